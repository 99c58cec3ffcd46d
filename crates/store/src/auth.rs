//! Users and API tokens. The store keeps only hashes: an argon2 PHC string per password and a
//! SHA-256 digest per token; hashing happens in the caller, so this crate never sees a secret.

use model::{Role, SiteId, Timestamp, User, UserId};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Result, Store, StoreError, constraint, from_ms, to_ms, touched};

/// An API token's metadata (never the token itself).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiToken {
    /// Store-assigned id.
    pub id: i64,
    /// Whose token it is.
    pub user_id: UserId,
    /// What the token is for, e.g. `mes-integration`.
    pub name: String,
    /// The first characters of the token, to recognise it in lists.
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked; revoked tokens no longer authenticate.
    pub revoked_at: Option<Timestamp>,
    /// When it stops working by itself (browser sessions); `None` for tokens that last until
    /// revoked.
    pub expires_at: Option<Timestamp>,
}

/// Who a valid token belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenOwner {
    /// The user.
    pub user: User,
    /// The token's id, so the caller can log which token acted.
    pub token_id: i64,
    /// When the token stops working (sign-in sessions); `None` for API tokens, which live until revoked.
    pub expires: Option<Timestamp>,
}

/// Unrevoked tokens made to last, per user, at most.
pub const MAX_LASTING_TOKENS: u64 = 100;

impl Store {
    /// How many users exist; zero means the store is new and needs a first admin.
    pub fn count_users(&self) -> Result<u64> {
        self.read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?))
    }

    /// Creates a user with an already-hashed password; `site` binds a device, operator or
    /// maintenance account to a site (the caller checks which roles may have one).
    pub fn create_user(
        &self,
        username: &str,
        role: Role,
        site: Option<SiteId>,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<User> {
        self.write(|tx| {
            if let Some(site) = site {
                crate::require(tx, "sites", site.0, "site_id")?;
            }
            // One person, one name: `Admin` beside `admin` would only mislead.
            let taken: Option<String> = tx
                .prepare_cached("SELECT username FROM users WHERE lower(username) = lower(?1)")?
                .query_row([username], |row| row.get(0))
                .optional()?;
            if let Some(taken) = taken {
                return Err(StoreError::Conflict {
                    field: Some("username".into()),
                    message: format!("username is already in use (as {taken:?}; names differ by more than case)"),
                });
            }
            tx.execute(
                "INSERT INTO users (username, role, site_id, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![username, role.as_str(), site.map(|s| s.0), password_hash, to_ms(now)],
            )
            .map_err(constraint)?;
            Ok(User {
                id: UserId(tx.last_insert_rowid()),
                username: username.into(),
                role,
                site_id: site,
                created_at: from_ms(to_ms(now))?,
            })
        })
    }

    /// Changes a user's role, site (`Some(None)` unbinds) or password hash. Only the roles that
    /// [`Role::may_be_bound_to_site`] keep a site: a new role without one drops it, and a device
    /// must keep one.
    pub fn update_user(
        &self,
        id: UserId,
        role: Option<Role>,
        site: Option<Option<SiteId>>,
        password_hash: Option<&str>,
    ) -> Result<User> {
        self.write(|tx| {
            let was: Option<(String, Option<i64>)> = tx
                .prepare_cached("SELECT role, site_id FROM users WHERE id = ?1")?
                .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((was, was_site)) = was else {
                return Err(StoreError::NotFound { entity: "user", id: id.0 });
            };
            let device_before = was == Role::Device.as_str();
            let device_after = role.map_or(device_before, |role| role == Role::Device);
            // Devices sign in with tokens only; a person needs a password to sign in at all.
            if device_after && password_hash.is_some() {
                return Err(StoreError::invalid(
                    "password",
                    "device accounts have no password; they sign in with tokens",
                ));
            }
            if device_before && !device_after && password_hash.is_none() {
                return Err(StoreError::invalid(
                    "password",
                    "give a password with the new role: the device account had none",
                ));
            }
            if role.is_some() || site.is_some() {
                let role_after = match role {
                    Some(role) => role,
                    None => Role::parse(&was)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown role {was:?}")))?,
                };
                let site_after = match site {
                    Some(Some(_)) if let Some(refusal) = role_after.site_refusal() => {
                        return Err(StoreError::invalid("site_id", &refusal));
                    }
                    Some(Some(site)) => {
                        crate::require(tx, "sites", site.0, "site_id")?;
                        Some(site.0)
                    }
                    Some(None) => None,
                    // A new role that is not bound to a site drops the old one.
                    None => was_site.filter(|_| role_after.may_be_bound_to_site()),
                };
                // A device publishes for its site over connections that may outlive a change:
                // another site is another device account.
                if device_before && device_after && site_after != was_site {
                    return Err(StoreError::invalid(
                        "site_id",
                        "a device's site is fixed; create a new device account for the other site",
                    ));
                }
                if role_after == Role::Device && site_after.is_none() {
                    let field = if site.is_some() { "site_id" } else { "role" };
                    return Err(StoreError::invalid(
                        field,
                        "a device account needs a site; create a new device account for it instead",
                    ));
                }
                touched(
                    tx.execute(
                        "UPDATE users SET role = ?2, site_id = ?3 WHERE id = ?1",
                        params![id.0, role_after.as_str(), site_after],
                    )?,
                    "user",
                    id.0,
                )?;
                keep_an_admin(tx)?;
            }
            if let Some(hash) = password_hash {
                touched(
                    tx.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id.0, hash])?,
                    "user",
                    id.0,
                )?;
            }
            tx.prepare_cached(&format!("{USER_SELECT} WHERE id = ?1"))?
                .query_row([id.0], user_row)
                .optional()?
                .ok_or(StoreError::NotFound { entity: "user", id: id.0 })?
        })
    }

    /// The longest device account name that `text` starts with, if any: whose a device's MQTT
    /// client id is.
    pub fn longest_device_prefix(&self, text: &str) -> Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT username FROM users WHERE role = 'device' AND substr(?1, 1, length(username)) = username
                     ORDER BY length(username) DESC LIMIT 1",
                )?
                .query_row([text], |row| row.get(0))
                .optional()?)
        })
    }

    /// Deletes a user and their tokens.
    pub fn delete_user(&self, id: UserId) -> Result<()> {
        self.write(|tx| {
            touched(tx.execute("DELETE FROM users WHERE id = ?1", [id.0])?, "user", id.0)?;
            keep_an_admin(tx)
        })
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<User>> {
        self.read(|conn| {
            conn.prepare_cached(&format!("{USER_SELECT} ORDER BY id"))?
                .query_map([], user_row)?
                .collect::<rusqlite::Result<Result<Vec<_>>>>()?
        })
    }

    /// A user and their password hash, for logging in: the name in any case (names differ by
    /// more than case). Of names an earlier version let differ in case only, the one written
    /// exactly so, or else the oldest.
    pub fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        self.read(|conn| {
            let found = conn
                .prepare_cached(
                    "SELECT id, username, role, created_ms, site_id, password_hash FROM users
                     WHERE lower(username) = lower(?1) ORDER BY username = ?1 DESC, id LIMIT 1",
                )?
                .query_row([username], |row| Ok((user_row(row)?, row.get::<_, String>(5)?)))
                .optional()?;
            match found {
                None => Ok(None),
                Some((user, hash)) => Ok(Some((user?, hash))),
            }
        })
    }

    /// The user names that differ in case only (an earlier version let them be made), in groups.
    pub fn user_names_differing_in_case(&self) -> Result<Vec<Vec<String>>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT username FROM users WHERE lower(username) IN
                   (SELECT lower(username) FROM users GROUP BY lower(username) HAVING count(*) > 1)
                 ORDER BY lower(username), id",
            )?;
            let names = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut groups: Vec<Vec<String>> = Vec::new();
            for name in names {
                match groups.last_mut() {
                    Some(group) if group[0].eq_ignore_ascii_case(&name) => group.push(name),
                    _ => groups.push(vec![name]),
                }
            }
            Ok(groups)
        })
    }

    /// Records a new token for `user` by its SHA-256 digest.
    pub fn create_token(
        &self,
        user: UserId,
        name: &str,
        digest: &[u8; 32],
        prefix: &str,
        now: Timestamp,
    ) -> Result<ApiToken> {
        self.create_expiring_token(user, name, digest, prefix, now, None)
    }

    /// Like [`Store::create_token`], for a token that stops working at `expires` (when given). A
    /// user holds at most [`MAX_LASTING_TOKENS`] unrevoked tokens without an end (a conflict).
    pub fn create_expiring_token(
        &self,
        user: UserId,
        name: &str,
        digest: &[u8; 32],
        prefix: &str,
        now: Timestamp,
        expires: Option<Timestamp>,
    ) -> Result<ApiToken> {
        self.write(|tx| {
            // Counted inside the write, so tokens asked for at once cannot pass the limit together.
            if expires.is_none() {
                let lasting: u64 = tx
                    .prepare_cached(
                        "SELECT count(*) FROM api_tokens WHERE user_id = ?1 AND expires_ms IS NULL AND revoked_ms IS NULL",
                    )?
                    .query_row([user.0], |row| row.get(0))?;
                if lasting >= MAX_LASTING_TOKENS {
                    return Err(StoreError::Conflict {
                        field: Some("user_id".into()),
                        message: format!(
                            "a user holds at most {MAX_LASTING_TOKENS} tokens; revoke one no longer used first"
                        ),
                    });
                }
            }
            tx.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user.0, name, &digest[..], prefix, to_ms(now), expires.map(to_ms)],
            )
            .map_err(constraint)?;
            Ok(ApiToken {
                id: tx.last_insert_rowid(),
                user_id: user,
                name: name.into(),
                prefix: prefix.into(),
                created_at: from_ms(to_ms(now))?,
                revoked_at: None,
                expires_at: expires.map(|at| from_ms(to_ms(at))).transpose()?,
            })
        })
    }

    /// Who the unrevoked, unexpired (at `now`) token with this digest belongs to. A token that
    /// expires and was made more than five minutes after `now` (a sign-in while the clock ran
    /// ahead) counts as expired: it would otherwise last as long as the clock was wrong, years
    /// after a boot with a wrong year. Tokens without an expiry are kept.
    pub fn token_owner(&self, digest: &[u8; 32], now: Timestamp) -> Result<Option<TokenOwner>> {
        self.read(|conn| live_token(conn, "t.token_hash = ?1", &digest[..], now))
    }

    /// Like [`Store::token_owner`], by the token's id: whether a token someone signed in with
    /// still works, and for whom (a connection that outlives its token's revocation is closed).
    pub fn live_token(&self, token_id: i64, now: Timestamp) -> Result<Option<TokenOwner>> {
        self.read(|conn| live_token(conn, "t.id = ?1", token_id, now))
    }

    /// Tokens of one user, or of everyone.
    pub fn tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, user_id, name, prefix, created_ms, revoked_ms, expires_ms FROM api_tokens
                 WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id",
            )?;
            let mut rows = statement.query([user.map(|u| u.0)])?;
            let mut tokens = Vec::new();
            while let Some(row) = rows.next()? {
                tokens.push(ApiToken {
                    id: row.get(0)?,
                    user_id: UserId(row.get(1)?),
                    name: row.get(2)?,
                    prefix: row.get(3)?,
                    created_at: from_ms(row.get(4)?)?,
                    revoked_at: row.get::<_, Option<i64>>(5)?.map(from_ms).transpose()?,
                    expires_at: row.get::<_, Option<i64>>(6)?.map(from_ms).transpose()?,
                });
            }
            Ok(tokens)
        })
    }

    /// Deletes up to `limit` tokens that expired before `before` (browser sessions; API tokens do
    /// not expire), oldest first; returns how many went.
    pub fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM api_tokens WHERE id IN (SELECT id FROM api_tokens WHERE expires_ms < ?1 ORDER BY id LIMIT ?2)",
                params![to_ms(before), limit],
            )?)
        })
    }

    /// Revokes every sign-in of `user` (the tokens a password bought, which expire by themselves:
    /// browser sessions and API log-ins) but `keep`, as after a password change; how many. Tokens
    /// made to last (for scripts and machines) stay, listed where their owner can revoke them.
    pub fn revoke_sign_ins(&self, user: UserId, keep: Option<i64>, now: Timestamp) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE api_tokens SET revoked_ms = ?3 WHERE user_id = ?1 AND (?2 IS NULL OR id != ?2)
                 AND expires_ms IS NOT NULL AND revoked_ms IS NULL",
                params![user.0, keep, to_ms(now)],
            )?)
        })
    }

    /// Revokes every token of `user` made to last (for scripts and machines), as after an admin
    /// set a new password for an account someone else may have used; how many.
    pub fn revoke_lasting_tokens(&self, user: UserId, now: Timestamp) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE api_tokens SET revoked_ms = ?2 WHERE user_id = ?1 AND expires_ms IS NULL AND revoked_ms IS NULL",
                params![user.0, to_ms(now)],
            )?)
        })
    }

    /// Revokes a token; `owner` restricts it to that user's tokens.
    pub fn revoke_token(&self, id: i64, owner: Option<UserId>, now: Timestamp) -> Result<()> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE api_tokens SET revoked_ms = ?3 WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) AND revoked_ms IS NULL",
                params![id, owner.map(|u| u.0), to_ms(now)],
            )?;
            // Revoking a revoked token again is done already, as a repeated DELETE should be.
            let revoked_before = changed == 0
                && tx
                    .prepare_cached(
                        "SELECT 1 FROM api_tokens WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) AND revoked_ms IS NOT NULL",
                    )?
                    .exists(params![id, owner.map(|u| u.0)])?;
            touched(if revoked_before { 1 } else { changed }, "token", id)
        })
    }
}

const USER_SELECT: &str = "SELECT id, username, role, created_ms, site_id FROM users";

fn user_row(row: &Row<'_>) -> rusqlite::Result<Result<User>> {
    let role: String = row.get(2)?;
    let Some(role) = Role::parse(&role) else {
        return Ok(Err(StoreError::Corrupt(format!("unknown role {role:?}"))));
    };
    let created_at = match from_ms(row.get(3)?) {
        Ok(ts) => ts,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(User {
        id: UserId(row.get(0)?),
        username: row.get(1)?,
        role,
        site_id: row.get::<_, Option<i64>>(4)?.map(SiteId),
        created_at,
    }))
}

/// Refuses a change (in its transaction, so two admins demoting each other at once cannot both
/// succeed) that would leave no admin: nobody could manage accounts, machines or sites again.
fn keep_an_admin(tx: &rusqlite::Connection) -> Result<()> {
    let admins: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM users WHERE role = 'admin'")?
        .query_row([], |row| row.get(0))?;
    if admins == 0 {
        return Err(StoreError::Conflict {
            field: Some("role".into()),
            message: "the last admin must stay an admin".into(),
        });
    }
    Ok(())
}

/// The owner of the token `which` picks (with `key` as `?1`), if it is neither revoked nor expired.
fn live_token(
    conn: &rusqlite::Connection,
    which: &str,
    key: impl rusqlite::ToSql,
    now: Timestamp,
) -> Result<Option<TokenOwner>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT u.id, u.username, u.role, u.created_ms, u.site_id, t.id, t.expires_ms FROM api_tokens t
             JOIN users u ON u.id = t.user_id WHERE {which} AND t.revoked_ms IS NULL
             AND (t.expires_ms IS NULL OR (t.expires_ms > ?2 AND t.created_ms <= ?2 + 300000))"
        ))?
        .query_row(params![key, to_ms(now)], |row| {
            Ok((user_row(row)?, row.get::<_, i64>(5)?, row.get::<_, Option<i64>>(6)?))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((user, token_id, expires_ms)) => {
            Ok(Some(TokenOwner { user: user?, token_id, expires: expires_ms.map(from_ms).transpose()? }))
        }
    }
}
