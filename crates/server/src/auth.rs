//! Authentication and authorisation: API tokens (random, stored as SHA-256 digests), passwords
//! (argon2id), the [`Principal`] extractor every protected handler takes, and the first-start
//! bootstrap of an admin account. Secrets never reach the log.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use model::{Role, Timestamp, User};
use sha2::{Digest, Sha256};
use store::Store;

use crate::AppState;
use crate::error::ApiError;

/// Tokens look like `mf_` followed by 64 hex digits (32 random bytes).
const TOKEN_PREFIX: &str = "mf_";
/// How many characters of a token are kept in clear to recognise it in lists.
const SHOWN_PREFIX_LEN: usize = 10;
/// How many characters of a token chosen by a person are kept in clear.
const CHOSEN_PREFIX_LEN: usize = 3;
/// Shortest token accepted from `MICROFACTORY_BOOTSTRAP_TOKEN`.
pub const MIN_BOOTSTRAP_TOKEN_LEN: usize = 16;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// How long a resolved token is trusted without asking the store again. Revocations through this
/// process clear the cache at once; this bounds how long one made by another process may take.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Who is calling.
    pub user: User,
    /// Which of their tokens they used.
    pub token_id: i64,
}

/// What an action needs; see [`Role`] for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Reading factory data.
    Read,
    /// Publishing telemetry (devices also need the right site; see [`Principal::may_ingest_for`]).
    Ingest,
    /// Reporting production.
    Report,
    /// Changing orders.
    Order,
    /// Making plans and changing the catalogue.
    Plan,
    /// Planning maintenance windows and changing alarm rules.
    Maintain,
    /// Changing the factory structure, users and other people's tokens.
    Administer,
}

impl Need {
    /// Whether `role` covers this need.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Need::Read => role.may_read(),
            Need::Ingest => role.may_ingest(),
            Need::Report => role.may_report_production(),
            Need::Order => role.may_order(),
            Need::Plan => role.may_plan(),
            Need::Maintain => role.may_maintain(),
            Need::Administer => role.may_administer(),
        }
    }
}

impl Principal {
    /// Fails with 403 unless the caller's role covers `need`.
    pub fn require(&self, need: Need) -> Result<(), ApiError> {
        let role = self.user.role;
        if need.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("the {} role may not do this", role.as_str())))
        }
    }
}

impl Principal {
    /// Whether the caller may publish telemetry for `site`: admins for any site, devices for
    /// their own.
    pub fn may_ingest_for(&self, site: model::SiteId) -> bool {
        match self.user.role {
            Role::Admin => true,
            Role::Device => self.user.site_id == Some(site),
            _ => false,
        }
    }
}

impl Principal {
    /// Fails with 403 unless the caller [acts at](User::acts_at) `site`, where `what` (a
    /// machine, "machine M-3") is; the answer names both sites.
    pub(crate) fn require_site(
        &self,
        store: &Store,
        site: model::SiteId,
        what: &str,
    ) -> Result<(), ApiError> {
        if self.user.acts_at(site) {
            return Ok(());
        }
        let code = |site: Option<model::SiteId>| {
            site.and_then(|site| store.site(site).ok()).map_or_else(|| "?".to_string(), |site| site.code)
        };
        Err(ApiError::forbidden(format!(
            "your account acts at site {} only, and {what} is at site {}",
            code(self.user.site_id),
            code(Some(site))
        )))
    }

    /// [`Principal::require_site`] for a machine, by id (404 when there is none).
    pub(crate) fn require_machine_site(
        &self,
        store: &Store,
        machine: model::MachineId,
    ) -> Result<(), ApiError> {
        if self.user.site_id.is_none() {
            return Ok(());
        }
        let machine = store.machine(machine)?;
        self.require_site(store, machine.site_id, &format!("machine {}", machine.code))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
        let principal = Principal::authenticate(parts, state).await?;
        crate::openapi::reject_undocumented_query(parts)?;
        Ok(principal)
    }
}

impl Principal {
    /// The caller, from the bearer token or the session cookie (401 without a valid one).
    pub(crate) async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
        let token = match parts.headers.get(header::AUTHORIZATION) {
            Some(header) => header
                .to_str()
                .ok()
                // The scheme's name is case-insensitive (RFC 9110, section 11.1).
                .and_then(|value| {
                    value
                        .get(..7)
                        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                        .map(|_| &value[7..])
                })
                .map(str::trim)
                .filter(|token| !token.is_empty())
                .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))?,
            None => {
                let token = session_cookie(&parts.headers).ok_or_else(|| {
                    ApiError::unauthorized("send an API token as 'Authorization: Bearer <token>'")
                })?;
                // A browser sends the cookie with any request to this origin, also one another
                // site makes it send; only our own pages add this header, and no other origin
                // may (there is no CORS), so a state change without it is refused.
                if !parts.method.is_safe() && !parts.headers.contains_key(CSRF_HEADER) {
                    return Err(ApiError::forbidden(format!(
                        "requests authenticated by the session cookie must send the {CSRF_HEADER} header"
                    )));
                }
                token
            }
        };
        Principal::from_token(token, state).await
    }

    /// The caller, if its role covers `need`, and then the query checked: a caller who may not
    /// do something is told that (403) before anything about its request (400).
    async fn with_need(parts: &Parts, state: &AppState, need: Need) -> Result<Principal, ApiError> {
        let principal = Principal::authenticate(parts, state).await?;
        principal.require(need)?;
        crate::openapi::reject_undocumented_query(parts)?;
        Ok(principal)
    }
}

/// The cookie that carries a browser session's token.
pub(crate) const SESSION_COOKIE: &str = "mf_session";
/// The header the dashboard's scripts send with every state-changing request.
pub(crate) const CSRF_HEADER: &str = "x-microfactory-csrf";

/// The session token from the `Cookie` header, if any.
pub(crate) fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

impl Principal {
    /// The owner of `token`, from the cache or the store; 401 when it is unknown or revoked.
    pub(crate) async fn from_token(token: &str, state: &AppState) -> Result<Principal, ApiError> {
        let digest = token_digest(token);
        let now = state.wall_clock.now();
        if let Some(principal) = state.tokens.get(&digest, now) {
            return Ok(principal);
        }
        let store = state.store.clone();
        let owner = tokio::task::spawn_blocking(move || store.token_owner(&digest, now))
            .await
            .map_err(ApiError::internal)??
            .ok_or_else(|| ApiError::unauthorized("the token is unknown or revoked"))?;
        let principal = Principal { user: owner.user, token_id: owner.token_id };
        state.tokens.put(digest, principal.clone(), owner.expires);
        Ok(principal)
    }
}

/// A caller allowed to read factory data: any role but `device`. Read handlers take this instead
/// of [`Principal`], so the check cannot be forgotten.
pub struct Reader(pub Principal);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Reader, ApiError> {
        Ok(Reader(Principal::with_need(parts, state, Need::Read).await?))
    }
}

/// Callers whose role covers one [`Need`], checked before the request's body is read: a caller
/// who may not take an action learns nothing from it about the body's schema or rules. Write
/// handlers take these instead of [`Principal`].
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $need:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<$name, ApiError> {
                Ok($name(Principal::with_need(parts, state, $need).await?))
            }
        }
    };
}

role_extractor!(
    /// A caller allowed to make plans and change the catalogue ([`Need::Plan`]).
    Planner,
    Need::Plan
);
role_extractor!(
    /// A caller allowed to change orders ([`Need::Order`]).
    Orderer,
    Need::Order
);
role_extractor!(
    /// A caller allowed to plan maintenance windows and change alarm rules ([`Need::Maintain`]).
    Maintainer,
    Need::Maintain
);
role_extractor!(
    /// A caller allowed to change the factory's structure and its accounts ([`Need::Administer`]).
    Administrator,
    Need::Administer
);
role_extractor!(
    /// A caller allowed to report production and acknowledge alarms ([`Need::Report`]).
    Reporter,
    Need::Report
);

role_extractor!(
    /// A caller allowed to publish telemetry ([`Need::Ingest`]; a device only for its own site,
    /// which the handler checks).
    Ingester,
    Need::Ingest
);

/// A caller allowed to report for machines: people who report production, and device accounts
/// (whose site the handler checks against the machine's).
pub struct MachineReporter(pub Principal);

impl FromRequestParts<AppState> for MachineReporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<MachineReporter, ApiError> {
        let principal = Principal::authenticate(parts, state).await?;
        let role = principal.user.role;
        if !(role.may_report_production() || role.may_ingest()) {
            return Err(ApiError::forbidden(format!(
                "the {} role may not report for machines",
                role.as_str()
            )));
        }
        crate::openapi::reject_undocumented_query(parts)?;
        Ok(MachineReporter(principal))
    }
}

/// A resolved token: who owns it, when it was looked up, and when it expires.
struct Cached {
    principal: Principal,
    at: Instant,
    expires: Option<Timestamp>,
}

/// Recently resolved tokens, keyed by digest. An entry is used for at most [`CACHE_TTL`] and never
/// past the token's own expiry, so a session ends on time even when it was just used.
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<[u8; 32], Cached>>,
}

impl TokenCache {
    fn get(&self, digest: &[u8; 32], now: Timestamp) -> Option<Principal> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let cached = entries.get(digest)?;
        let fresh = cached.at.elapsed() < CACHE_TTL && cached.expires.is_none_or(|expires| now < expires);
        fresh.then(|| cached.principal.clone())
    }

    fn put(&self, digest: [u8; 32], principal: Principal, expires: Option<Timestamp>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(digest, Cached { principal, at: Instant::now(), expires });
    }

    /// Forgets everything; called after any change to users or tokens.
    pub fn clear(&self) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A fresh random token.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&bytes)))
}

/// A fresh random password of 20 characters from an unambiguous alphabet.
pub fn new_password() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

/// The digest under which a token is stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The part of a token that may be shown again later: `mf_` and 7 of its 64 random hex digits,
/// or of a token chosen by a person (`MICROFACTORY_BOOTSTRAP_TOKEN`) its first 3 characters
/// only, as a short one would otherwise be mostly in clear.
pub fn shown_prefix(token: &str) -> String {
    let shown = if token.starts_with(TOKEN_PREFIX) { SHOWN_PREFIX_LEN } else { CHOSEN_PREFIX_LEN };
    token.chars().take(shown).collect()
}

/// Password hashes computed at once at most. Each argon2id run holds 19 MiB, so a burst of
/// sign-ins (with or without an account) would otherwise take the machine's memory; the others
/// wait their turn.
const PASSWORD_WORK_AT_ONCE: usize = 2;
/// How long a sign-in waits for its turn before it is told to try again (503).
const PASSWORD_WORK_WAIT: Duration = Duration::from_secs(10);

static PASSWORD_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PASSWORD_WORK_AT_ONCE);

/// Runs `work` (hashing or checking a password) off the request threads, at most
/// [`PASSWORD_WORK_AT_ONCE`] at a time. The turn is held until the work ends, even if the
/// client goes away meanwhile.
pub(crate) async fn password_work<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let turn = tokio::time::timeout(PASSWORD_WORK_WAIT, PASSWORD_WORK.acquire())
        .await
        .map_err(|_| ApiError::service_unavailable("too many sign-ins at once; try again in a few seconds"))?
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        let result = work();
        drop(turn);
        result
    })
    .await
    .map_err(ApiError::internal)
}

/// Argon2 working memory (19 MiB each with the default parameters), kept for the next password
/// rather than allocated afresh each time: handed back and forth between threads, buffers this
/// large made the allocator keep tens of megabytes per sign-in (6 GB after 600 sign-ins at once).
static ARGON2_MEMORY: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

/// Runs `work` with argon2 working memory of at least `blocks` blocks.
fn with_argon2_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    let taken = ARGON2_MEMORY.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut memory = match taken {
        Some(memory) if memory.len() >= blocks => memory,
        _ => vec![Block::default(); blocks],
    };
    let result = work(&mut memory[..blocks]);
    let mut pool = ARGON2_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < PASSWORD_WORK_AT_ONCE {
        pool.push(memory);
    }
    result
}

/// Hashes a password with argon2id (the crate's default parameters) and a random salt, as a PHC
/// string.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ApiError::internal)?;
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = with_argon2_memory(params.block_count(), |memory| {
        Output::init_with(length, |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), &salt, out, memory)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
    })
    .map_err(ApiError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(ApiError::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash` (compared in constant time).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed))
    else {
        return false;
    };
    let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_argon2_memory(params.block_count(), |memory| {
        Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt, out, memory)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
    });
    // `Output`'s equality takes the same time wherever the first difference is.
    computed.is_ok_and(|computed| computed == expected)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Credentials created on first start, to show the operator once.
#[derive(Debug)]
pub struct Bootstrap {
    /// The admin's user name.
    pub username: String,
    /// The admin's password (random).
    pub password: String,
    /// The admin's first API token (random, or from `MICROFACTORY_BOOTSTRAP_TOKEN`).
    pub token: String,
    /// Whether the token came from the environment (then it is not worth printing).
    pub token_from_env: bool,
}

/// Checks a preset bootstrap token before anything is created with it.
pub fn check_bootstrap_token(preset_token: &str) -> Result<(), BootstrapError> {
    // Spaces or line breaks are a slip of copying (an `Authorization` header can never carry them
    // back), and length counts characters, not bytes.
    if preset_token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BootstrapError::TokenNotPrintable);
    }
    if preset_token.chars().count() < MIN_BOOTSTRAP_TOKEN_LEN {
        return Err(BootstrapError::TokenTooShort);
    }
    Ok(())
}

/// On an empty store, creates the `admin` user with a random password and a first API token
/// (`preset_token` when given); returns `None` when users already exist. With `again` (a first
/// start that stopped before it showed the credentials), the `admin` user gets a new password and
/// a new first token instead, and its other tokens are revoked: nobody has seen the old ones.
pub fn bootstrap(
    store: &Store,
    preset_token: Option<&str>,
    now: Timestamp,
    again: bool,
) -> Result<Option<Bootstrap>, BootstrapError> {
    let existing = store.users()?;
    let admin = existing.iter().find(|user| user.username == "admin" && user.role == Role::Admin);
    let (first, redo) = (existing.is_empty(), again && admin.is_some());
    if !(first || redo) {
        return Ok(None);
    }
    if let Some(token) = preset_token {
        check_bootstrap_token(token)?;
    }
    let password = new_password()?;
    let hash = hash_password(&password).map_err(|_| BootstrapError::Hash)?;
    // Made again with the same preset token (the environment still holds it): that one is
    // whoever set it knows already, and stays; the others go.
    let preset_live = match (preset_token, admin) {
        (Some(token), Some(admin)) => store
            .token_owner(&token_digest(token), now)?
            .filter(|owner| owner.user.id == admin.id)
            .map(|owner| owner.token_id),
        _ => None,
    };
    let user = match admin {
        Some(admin) => {
            for token in store.tokens(Some(admin.id))? {
                if Some(token.id) != preset_live && token.revoked_at.is_none() {
                    store.revoke_token(token.id, None, now)?;
                }
            }
            store.update_user(admin.id, None, None, Some(&hash))?
        }
        None => store.create_user("admin", Role::Admin, None, &hash, now)?,
    };
    let token = match preset_token {
        Some(token) => token.to_string(),
        None => new_token()?,
    };
    if preset_live.is_none() {
        store.create_token(user.id, "bootstrap", &token_digest(&token), &shown_prefix(&token), now)?;
    }
    Ok(Some(Bootstrap { username: user.username, password, token, token_from_env: preset_token.is_some() }))
}

/// Why the first-start bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(#[from] getrandom::Error),
    /// Hashing the password failed.
    #[error("could not hash the admin password")]
    Hash,
    /// The preset token holds spaces, line breaks or other control characters.
    #[error(
        "MICROFACTORY_BOOTSTRAP_TOKEN holds spaces, line breaks or control characters; give the token alone"
    )]
    TokenNotPrintable,
    /// The preset token is too short to be safe.
    #[error("MICROFACTORY_BOOTSTRAP_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_LEN} characters")]
    TokenTooShort,
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn a_preset_token_is_long_enough_and_has_no_spaces() {
        assert!(check_bootstrap_token("bench-token-0123456789abcdef").is_ok());
        assert!(check_bootstrap_token("令牌令牌令牌令牌令牌令牌令牌令牌").is_ok(), "16 characters");
        for (token, short) in [
            ("short", true),
            ("éééééééé", true),
            (" bench-token-0123456789 ", false),
            ("                ", false),
            ("bench-token-0123456789\n", false),
        ] {
            let error = check_bootstrap_token(token).unwrap_err();
            assert_eq!(matches!(error, BootstrapError::TokenTooShort), short, "{token:?}: {error}");
        }
    }

    #[test]
    fn passwords_hash_and_verify_as_the_argon2_crate_does() {
        let ours = hash_password("correct horse battery").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        assert!(verify_password("correct horse battery", &ours));
        assert!(!verify_password("correct horse batterY", &ours));
        // A hash the crate made (as stored before) still verifies.
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let theirs = Argon2::default().hash_password(b"an older password", &salt).unwrap().to_string();
        assert!(verify_password("an older password", &theirs));
        assert!(!verify_password("an older passworD", &theirs));
        assert!(!verify_password("anything", "!"));
        assert!(!verify_password("anything", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA"));
    }
}
