//! Handlers for logging in, users and API tokens. Secrets appear in exactly two responses — a new
//! token, once, when it is created or a user logs in — and in no log line.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::{FieldError, Role, User, UserId};
use serde::{Deserialize, Serialize};

use super::{Created, blocking};
use crate::AppState;
use crate::auth::{
    self, Administrator, Need, Principal, Reader, hash_password, new_token, shown_prefix, token_digest,
    verify_password,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody};

/// A log-in request.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: String,
}

/// A new token and its owner.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct NewTokenResponse {
    /// The secret: shown only now. Send it as `Authorization: Bearer <token>`.
    pub(crate) token: String,
    /// The token's id, to revoke it.
    pub(crate) id: i64,
    /// Who it belongs to.
    user: User,
}

/// The client's address as the log shows it: the address, or `unknown`.
fn shown_peer(peer: Option<std::net::IpAddr>) -> String {
    peer.map_or_else(|| "unknown".into(), |peer| peer.to_string())
}

/// A hash to verify against when the user does not exist, so that a wrong user name takes as
/// long as a wrong password and log-in timing does not reveal which user names exist.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default()).clone()
}

pub(crate) async fn login(
    State(state): State<AppState>,
    crate::http::ClientAddress(peer): crate::http::ClientAddress,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    JsonBody(login): JsonBody<Login>,
) -> ApiResult<Created<NewTokenResponse>> {
    // Like every operation that takes no query; this one needs no token, so no token check does it.
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        let name = query.split(['=', '&']).next().unwrap_or("query").to_string();
        return Err(ApiError::bad_request(name, "unknown query parameter: this operation takes none"));
    }
    let user = check_credentials(&state, login.username, login.password, peer).await?;
    // A password buys a sign-in, which ends as a browser session does; a token to keep is made
    // with `POST /tokens`.
    let lifetime = time::Duration::seconds(i64::from(crate::web::SESSION_SECONDS));
    issue_token(&state, user, "login", Some(lifetime)).await
}

/// The user with these credentials; 401 (after the same work either way) when there is none, and
/// 429 while too many sign-ins of the name or from `peer` failed of late (see `throttle`).
pub(crate) async fn check_credentials(
    state: &AppState,
    username: String,
    password: String,
    peer: Option<std::net::IpAddr>,
) -> ApiResult<User> {
    // User names are ASCII and differ by more than case: " OP1" and "ｏｐ１" (typed with a
    // Chinese input method in full-width mode) are op1. (Earlier versions let two names differ
    // in case only: each of those signs in with the name as it was written.)
    let typed = model::fold_width(username.trim()).into_owned();
    let username = typed.to_ascii_lowercase();
    if let Err(wait) = state.sign_ins.begin(&username, peer) {
        // The name as an account has it, never what was typed otherwise (it may be a password).
        tracing::info!(peer = %shown_peer(peer), "sign-in refused: too many failed of late for this name or address");
        return Err(ApiError::too_many_requests(
            format!("too many failed sign-ins; try again in {} s", crate::error::ceil_seconds(wait)),
            wait,
        ));
    }
    let login = Login { username, password };
    let store = state.store.clone();
    let found = blocking(move || store.user_credentials(&typed)).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, auth::password_work(dummy_hash).await?),
    };
    let password = login.password;
    // An account without a password (a device's "!") costs the same work as any other, so the
    // answer's time does not tell which names are devices.
    let usable = argon2::password_hash::PasswordHash::new(&hash).is_ok();
    let hash = if usable { hash } else { auth::password_work(dummy_hash).await? };
    // The work is done either way; only then does an unusable hash make it fail.
    let verified = auth::password_work(move || verify_password(&password, &hash)).await?;
    let valid = usable && verified;
    match (user, valid) {
        (Some(user), true) if user.role == Role::Device => {
            Err(ApiError::forbidden("device accounts sign in with tokens, not passwords"))
        }
        (Some(user), true) => {
            state.sign_ins.succeeded(&login.username, peer);
            tracing::info!(user = %user.username, peer = %shown_peer(peer), "signed in");
            Ok(user)
        }
        (user, _) => {
            // Counted as failed when it began.
            // The name of an account, never what was typed otherwise: a password typed into the
            // name field must not end up in the log.
            match user {
                Some(user) => {
                    tracing::info!(user = %user.username, peer = %shown_peer(peer), "failed log-in")
                }
                None => tracing::info!(peer = %shown_peer(peer), "failed log-in with an unknown user name"),
            }
            Err(ApiError::unauthorized("wrong user name or password"))
        }
    }
}

/// Creates a token named `name` for `user`, valid for `lifetime` when given; the answer holds
/// the secret.
pub(crate) async fn issue_token(
    state: &AppState,
    user: User,
    name: &str,
    lifetime: Option<time::Duration>,
) -> ApiResult<Created<NewTokenResponse>> {
    let token = new_token().map_err(ApiError::internal)?;
    let (digest, prefix, now) = (token_digest(&token), shown_prefix(&token), state.wall_clock.now());
    let store = state.store.clone();
    let (user_id, name, expires) = (user.id, name.to_string(), lifetime.map(|l| now + l));
    let record =
        blocking(move || store.create_expiring_token(user_id, &name, &digest, &prefix, now, expires)).await?;
    Ok(Created(NewTokenResponse { token, id: record.id, user }))
}

pub(crate) async fn me(principal: Principal) -> Json<User> {
    Json(principal.user)
}

/// A user to create.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    username: String,
    role: Role,
    /// At least 12 characters; required for people. Device accounts sign in with tokens only and
    /// need none (one given for them is not kept).
    #[serde(default)]
    password: Option<String>,
    /// The site the account belongs to: required for `device` accounts (the site they publish
    /// for); optional for `operator` and `maintenance` accounts, which then act on that site's
    /// machines only; not for the other roles, which cover every site.
    #[serde(default)]
    site_id: Option<model::SiteId>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    role: Option<Role>,
    /// The site the account acts at (`operator`, `maintenance`) or publishes for (`device`);
    /// `null` unbinds an operator or maintenance account, so it acts at every site. A new role
    /// that cannot be bound to a site drops the account's site.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<model::SiteId>")]
    site_id: Option<Option<model::SiteId>>,
    /// A new password. It ends every sign-in of the user and, unless `keep_tokens`, every token
    /// made to last too: the fix for an account someone else has used.
    password: Option<String>,
    /// With `password`: keep the user's tokens made to last (for scripts and machines), as when
    /// the password was only forgotten. Default false.
    keep_tokens: Option<bool>,
}

/// For a field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A signed-in user's own new password, with the current one.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    /// The password now.
    current_password: String,
    /// The new password.
    new_password: String,
}

/// `POST /me/password`: every user with a password changes their own (the first admin's is
/// random, shown once). The current password must be right. The user's other sign-ins (browser
/// sessions, API log-ins) end; tokens made to last stay.
pub(crate) async fn change_own_password(
    State(state): State<AppState>,
    // Devices sign in with tokens, not passwords: `Reader` refuses them before the body is read.
    Reader(principal): Reader,
    crate::http::ClientAddress(peer): crate::http::ClientAddress,
    JsonBody(change): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    let mut problems = Vec::new();
    check_password(&change.new_password, &mut problems);
    if let Some(problem) = problems.pop() {
        return Err(ApiError::validation(vec![FieldError::new("new_password", problem.message)]));
    }
    // Guesses of the current password, by whoever holds a session or token of the account, are
    // slowed down and logged as failed sign-ins are (the same counts).
    let throttled = principal.user.username.to_ascii_lowercase();
    if let Err(wait) = state.sign_ins.begin(&throttled, peer) {
        tracing::info!(user = %principal.user.username, peer = %shown_peer(peer), "password change refused: too many wrong passwords of late");
        return Err(ApiError::too_many_requests(
            format!("too many wrong passwords; try again in {} s", crate::error::ceil_seconds(wait)),
            wait,
        ));
    }
    let (store, username) = (state.store.clone(), principal.user.username.clone());
    let hash = blocking(move || store.user_credentials(&username)).await?.map(|(_, hash)| hash);
    let current = change.current_password;
    let right = match hash {
        Some(hash) => auth::password_work(move || verify_password(&current, &hash)).await?,
        None => false,
    };
    if !right {
        tracing::info!(user = %principal.user.username, peer = %shown_peer(peer), "password change with a wrong current password");
        return Err(ApiError::validation(vec![FieldError::new(
            "current_password",
            "is not the password now",
        )]));
    }
    state.sign_ins.succeeded(&throttled, peer);
    let hash = hash_off_runtime(change.new_password).await?;
    let (store, id) = (state.store.clone(), principal.user.id);
    let (keep, now) = (principal.token_id, state.wall_clock.now());
    let ended = blocking(move || {
        store.update_user(id, None, None, Some(&hash))?;
        store.revoke_sign_ins(id, Some(keep), now)
    })
    .await?;
    state.tokens.clear();
    tracing::info!(user = %principal.user.username, other_sign_ins_ended = ended, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

fn check_password(password: &str, out: &mut Vec<FieldError>) {
    // Spaces and invisible characters count, but a password of nothing else is no password.
    let seen = password.chars().filter(|c| !c.is_whitespace() && !model::is_invisible(*c)).count();
    if password.chars().count() < auth::MIN_PASSWORD_LEN || password.len() > 1024 {
        out.push(FieldError::new(
            "password",
            format!("must be {} to 1024 characters", auth::MIN_PASSWORD_LEN),
        ));
    } else if seen < auth::MIN_PASSWORD_LEN / 2 {
        out.push(FieldError::new(
            "password",
            format!("needs at least {} characters other than spaces", auth::MIN_PASSWORD_LEN / 2),
        ));
    }
}

pub(crate) async fn list_users(
    State(state): State<AppState>,
    _: Administrator,
) -> ApiResult<Json<Vec<User>>> {
    let store = state.store;
    Ok(Json(blocking(move || store.users()).await?))
}

pub(crate) async fn create_user(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    JsonBody(new): JsonBody<NewUser>,
) -> ApiResult<Created<User>> {
    principal.require(Need::Administer)?;
    let mut problems = Vec::new();
    model::check_code("username", &new.username, &mut problems);
    match (&new.password, new.role) {
        (_, Role::Device) => {}
        (Some(password), _) => check_password(password, &mut problems),
        (None, _) => problems.push(FieldError::new("password", "people sign in with a password: give one")),
    }
    match (new.role, new.site_id) {
        (Role::Device, None) => {
            problems.push(FieldError::new("site_id", "a device account needs the site it publishes for"))
        }
        (role, Some(_)) => {
            if let Some(refusal) = role.site_refusal() {
                problems.push(FieldError::new("site_id", refusal));
            }
        }
        (_, None) => {}
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    // "!" is no hash any password matches: a device cannot sign in with one.
    let hash = match (new.role, new.password) {
        (Role::Device, _) | (_, None) => "!".to_string(),
        (_, Some(password)) => hash_off_runtime(password).await?,
    };
    let (store, now) = (state.store, state.wall_clock.now());
    let user = blocking(move || store.create_user(&new.username, new.role, new.site_id, &hash, now)).await?;
    tracing::info!(
        by = %principal.user.username,
        user = %user.username,
        role = user.role.as_str(),
        site_id = user.site_id.map(|site| site.0),
        "user created"
    );
    Ok(Created(user))
}

async fn hash_off_runtime(password: String) -> ApiResult<String> {
    auth::password_work(move || hash_password(&password)).await?
}

pub(crate) async fn update_user(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(change): JsonBody<UserChange>,
) -> ApiResult<Json<User>> {
    principal.require(Need::Administer)?;
    if id == principal.user.id.0 && change.role.is_some_and(|role| role != Role::Admin) {
        return Err(ApiError::conflict(Some("role".into()), "admins cannot demote themselves"));
    }
    let hash = match change.password {
        Some(password) => {
            let mut problems = Vec::new();
            check_password(&password, &mut problems);
            if !problems.is_empty() {
                return Err(ApiError::validation(problems));
            }
            Some(hash_off_runtime(password).await?)
        }
        None => None,
    };
    if change.keep_tokens.is_some() && hash.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "keep_tokens",
            "only goes with a new password",
        )]));
    }
    let lasting_too = !change.keep_tokens.unwrap_or(false);
    let (store, now) = (state.store.clone(), state.wall_clock.now());
    let (new_role, new_password) = (change.role, hash.is_some());
    let user = blocking(move || {
        let user = store.update_user(UserId(id), change.role, change.site_id, hash.as_deref())?;
        // A password set by an admin (forgotten, or taken) ends the user's sign-ins, and
        // unless asked otherwise the tokens a taker could have made with one.
        if hash.is_some() {
            store.revoke_sign_ins(UserId(id), None, now)?;
            if lasting_too {
                store.revoke_lasting_tokens(UserId(id), now)?;
            }
        }
        Ok(user)
    })
    .await?;
    state.tokens.clear();
    tracing::info!(
        by = %principal.user.username,
        user = %user.username,
        role = new_role.map(Role::as_str),
        site_id = user.site_id.map(|site| site.0),
        password_set = new_password,
        lasting_tokens_revoked = new_password && lasting_too,
        "user changed"
    );
    Ok(Json(user))
}

pub(crate) async fn delete_user(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    if id == principal.user.id.0 {
        return Err(ApiError::conflict(None, "admins cannot delete themselves"));
    }
    let store = state.store.clone();
    blocking(move || store.delete_user(UserId(id))).await?;
    state.tokens.clear();
    tracing::info!(by = %principal.user.username, user_id = id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A token's metadata, as listed.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct TokenInfo {
    id: i64,
    user_id: UserId,
    name: String,
    /// The first characters of the token.
    prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "model::DateTime")]
    created_at: model::Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<model::DateTime>")]
    revoked_at: Option<model::Timestamp>,
    /// When the token stops working by itself (browser sessions); absent when it lasts until
    /// revoked.
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<model::DateTime>")]
    expires_at: Option<model::Timestamp>,
}

/// A token to create.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// What the token is for.
    name: String,
    /// Whose token it is; only admins may name someone else. Defaults to the caller.
    user_id: Option<UserId>,
}

pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    let owner = if principal.user.role.may_administer() { None } else { Some(principal.user.id) };
    let store = state.store;
    let tokens = blocking(move || store.tokens(owner)).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                user_id: t.user_id,
                name: t.name,
                prefix: t.prefix,
                created_at: t.created_at,
                revoked_at: t.revoked_at,
                expires_at: t.expires_at,
            })
            .collect(),
    ))
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    // A device's tokens come from an administrator: a stolen one must not breed others that
    // outlive its revocation. `Reader` refuses devices before the body is read.
    Reader(principal): Reader,
    JsonBody(request): JsonBody<TokenRequest>,
) -> ApiResult<Created<NewTokenResponse>> {
    let mut problems = Vec::new();
    model::check_name("name", &request.name, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let user = match request.user_id {
        Some(id) if id != principal.user.id => {
            principal.require(Need::Administer)?;
            let store = state.store.clone();
            blocking(move || store.users()).await?.into_iter().find(|u| u.id == id).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new("user_id", format!("no such user (id {id})"))])
            })?
        }
        _ => principal.user.clone(),
    };
    // The store refuses more than `store::MAX_LASTING_TOKENS` (a conflict).
    let (for_user, name) = (user.username.clone(), request.name.clone());
    let created = issue_token(&state, user, &request.name, None).await?;
    tracing::info!(by = %principal.user.username, user = %for_user, name = %name, "lasting token created");
    Ok(created)
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    let owner = if principal.user.role.may_administer() { None } else { Some(principal.user.id) };
    let (store, now) = (state.store.clone(), state.wall_clock.now());
    blocking(move || {
        // Someone else's token is forbidden, not missing: it exists, the caller may not touch it.
        if let Some(owner) = owner
            && !store.tokens(Some(owner))?.iter().any(|t| t.id == id)
            && store.tokens(None)?.iter().any(|t| t.id == id)
        {
            return Ok(Err(ApiError::forbidden("only administrators may revoke other people's tokens")));
        }
        store.revoke_token(id, owner, now).map(Ok)
    })
    .await??;
    state.tokens.clear();
    tracing::info!(by = %principal.user.username, token_id = id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
