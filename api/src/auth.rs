//! Who is calling: bearer tokens, passwords and refresh-token sessions.
//!
//! Three kinds of credential reach the API, all as `Authorization: Bearer`:
//! - the operator's `admin_token` from the node config (compared in constant
//!   time), which may do anything and acts on behalf of a named customer;
//! - an access token: a JWT signed with HS256 by any node of the cluster
//!   (they share the secret), short-lived, naming the customer, role and
//!   region. Only HS256 is accepted (so `alg: none` and algorithm swaps fail),
//!   with issuer, audience and expiry checked;
//! - a guest token: an access token for an address's guest identity, issued
//!   only to whoever entered the one-time code sent to that address, so a
//!   buyer without an account can hold, pay and see their orders.
//!
//! Refresh tokens are opaque: `rt1.{group}.{session}.{secret}`. The group and
//! session say where the session lives; only the SHA-256 of the secret is
//! stored (see `booking::accounts` for rotation and replay detection).
//!
//! Passwords are hashed with argon2id at the edge, on a blocking thread, never
//! inside the state machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use booking::{CustomerId, Role, TokenHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AppState, Problem};

const ISSUER: &str = "boxoffice";
const AUDIENCE: &str = "boxoffice-api";
const REFRESH_PREFIX: &str = "rt1";

/// Shortest and longest password accepted at registration.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// The signing keys and lifetimes of tokens; the same on every node.
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// SHA-256("derive" ‖ secret): keys values derived from client input
    /// (see `accounts::register_account`) without exposing the signing key.
    derivation: [u8; 32],
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// What an access token says. `role` is one of `customer`, `admin`,
/// `operator`, `guest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub region: String,
    /// The refresh session this token was issued under; none for guests.
    pub sid: Option<u64>,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

impl AuthKeys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        AuthKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            derivation: Sha256::new()
                .chain_update(b"derive")
                .chain_update(secret)
                .finalize()
                .into(),
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn derivation_secret(&self) -> &[u8; 32] {
        &self.derivation
    }

    /// Signs an access token for `subject`.
    pub fn access_token(&self, subject: &CustomerId, role: &str, region: &str, sid: Option<u64>) -> String {
        let now = unix_now();
        let claims = Claims {
            sub: subject.as_str().to_owned(),
            role: role.to_owned(),
            region: region.to_owned(),
            sid,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + self.access_ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    fn verify(&self, token: &str) -> Result<Claims, Problem> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Problem::unauthorized("token_expired", "the access token has expired; refresh it")
                }
                _ => Problem::unauthorized("invalid_token", format!("the bearer token is not valid: {e}")),
            })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// The operator's `admin_token`.
    Operator,
    /// A registered account.
    User {
        customer_id: CustomerId,
        role: Role,
        region: String,
    },
    /// A guest buyer, known by e-mail only.
    Guest { customer_id: CustomerId, region: String },
}

impl Caller {
    /// Organisers and operators: write the catalog, see every order, check in.
    pub fn is_staff(&self) -> bool {
        matches!(
            self,
            Caller::Operator
                | Caller::User {
                    role: Role::Admin | Role::Operator,
                    ..
                }
        )
    }

    /// Operators: run the cluster and manage accounts' roles.
    pub fn is_operator(&self) -> bool {
        matches!(
            self,
            Caller::Operator
                | Caller::User {
                    role: Role::Operator,
                    ..
                }
        )
    }

    /// The customer this caller buys as, if they are one.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        match self {
            Caller::User { customer_id, .. } | Caller::Guest { customer_id, .. } => Some(customer_id),
            Caller::Anonymous | Caller::Operator => None,
        }
    }

    pub fn require_staff(&self) -> Result<(), Problem> {
        match self {
            Caller::Anonymous => Err(login_required()),
            c if c.is_staff() => Ok(()),
            _ => Err(Problem::forbidden(
                "this needs an organiser (admin) or operator account",
            )),
        }
    }

    pub fn require_operator(&self) -> Result<(), Problem> {
        match self {
            Caller::Anonymous => Err(login_required()),
            c if c.is_operator() => Ok(()),
            _ => Err(Problem::forbidden("this needs an operator")),
        }
    }

    /// The customer a booking is for. A customer or guest books for
    /// themselves (a `holder` in the body must name them); staff act on behalf
    /// of the customer the body names.
    pub fn holder(&self, named: Option<&str>) -> Result<CustomerId, Problem> {
        match (self, named) {
            (Caller::Anonymous, _) => Err(login_required()),
            (Caller::User { customer_id, .. } | Caller::Guest { customer_id, .. }, None) => {
                Ok(customer_id.clone())
            }
            (Caller::User { customer_id, .. } | Caller::Guest { customer_id, .. }, Some(named))
                if named == customer_id.as_str() =>
            {
                Ok(customer_id.clone())
            }
            (staff, Some(named)) if staff.is_staff() => {
                CustomerId::new(named).map_err(|e| Problem::invalid_field("holder", e.to_string()))
            }
            (staff, None) if staff.is_staff() => Err(Problem::invalid_field(
                "holder",
                "staff must name the customer they act for",
            )),
            _ => Err(Problem::forbidden("customers can only book for themselves")),
        }
    }

    /// Who an `Idempotency-Key` belongs to: keys of different callers never meet.
    pub fn idempotency_scope(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".to_owned(),
            Caller::Operator => "admin-token".to_owned(),
            Caller::User { customer_id, .. } | Caller::Guest { customer_id, .. } => {
                format!("customer:{customer_id}")
            }
        }
    }

    /// Whether this caller may see what `owner` bought or holds.
    pub fn may_see(&self, owner: &CustomerId) -> bool {
        self.is_staff() || self.customer_id() == Some(owner)
    }
}

pub fn login_required() -> Problem {
    Problem::unauthorized(
        "unauthorized",
        "log in: send Authorization: Bearer <access token>",
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Problem::unauthorized("invalid_token", "use Authorization: Bearer <token>"))?;
        if let Some(admin) = state.admin_token.as_deref()
            && bool::from(token.as_bytes().ct_eq(admin.as_bytes()))
        {
            return Ok(Caller::Operator);
        }
        let Some(keys) = state.auth.as_deref() else {
            return Err(Problem::unauthorized(
                "invalid_token",
                "this node has no [auth] configured, so only the admin token is accepted",
            ));
        };
        let claims = keys.verify(token)?;
        let customer_id = CustomerId::new(&claims.sub).map_err(|_| {
            Problem::unauthorized("invalid_token", "the token's subject is not a customer id")
        })?;
        let region = claims.region;
        let role = match claims.role.as_str() {
            "guest" => return Ok(Caller::Guest { customer_id, region }),
            "customer" => Role::Customer,
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            _ => {
                return Err(Problem::unauthorized(
                    "invalid_token",
                    "the token names an unknown role",
                ));
            }
        };
        Ok(Caller::User {
            customer_id,
            role,
            region,
        })
    }
}

// ----- Passwords ------------------------------------------------------------

/// argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane): about
/// 20-40 ms per hash on one core.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params)
}

pub fn check_password(password: &str) -> Result<(), Problem> {
    let chars = password.chars().count();
    if !PASSWORD_LEN.contains(&chars) {
        return Err(Problem::invalid_field(
            "password",
            format!(
                "must be {} to {} characters",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ));
    }
    Ok(())
}

/// Hashes a password on a blocking thread (argon2 is deliberately slow),
/// with the given salt or a random one.
pub async fn hash_password(password: String, salt: Option<[u8; 16]>) -> Result<String, Problem> {
    let salt: [u8; 16] = salt.unwrap_or_else(rand::random);
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| {
        Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })?
    .map_err(|e| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e))
}

/// Checks a password against a stored hash, on a blocking thread. With no
/// hash (unknown e-mail) it hashes anyway, so the answer takes as long.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => PasswordHash::new(&stored)
            .map(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false),
        None => {
            let salt = SaltString::encode_b64(&[0u8; 16]).expect("a fixed salt encodes");
            let _ = argon2().hash_password(password.as_bytes(), &salt);
            false
        }
    })
    .await
    .unwrap_or(false)
}

// ----- Refresh tokens -------------------------------------------------------

/// A refresh token taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub group: u64,
    pub session_id: u64,
    pub secret: String,
}

impl RefreshToken {
    /// A fresh secret for a session not yet started (its id is set later).
    pub fn new_secret() -> String {
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    }

    pub fn render(&self) -> String {
        format!(
            "{REFRESH_PREFIX}.{}.{}.{}",
            self.group, self.session_id, self.secret
        )
    }

    pub fn parse(text: &str) -> Result<Self, Problem> {
        let invalid = || Problem::unauthorized("session_invalid", "the refresh token is malformed");
        let mut parts = text.splitn(4, '.');
        let (Some(REFRESH_PREFIX), Some(group), Some(session), Some(secret)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if secret.len() != 43
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid());
        }
        Ok(RefreshToken {
            group: group.parse().map_err(|_| invalid())?,
            session_id: session.parse().map_err(|_| invalid())?,
            secret: secret.to_owned(),
        })
    }
}

/// What the state machine stores of a refresh secret.
pub fn token_hash(secret: &str) -> TokenHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new guest identity's customer id: `g.{group}.{random}`, never derived
/// from the address (see `accounts::guest`).
pub fn new_guest_id(group: u64) -> CustomerId {
    let random: String = URL_SAFE_NO_PAD
        .encode(rand::random::<[u8; 9]>())
        .chars()
        .map(|c| if c == '_' { 'x' } else { c })
        .collect();
    CustomerId::new(&format!("g.{group}.{random}")).expect("a valid customer id")
}

/// A new account's customer id: `u.{group}.{random}`, the random part taken
/// from `seed` when one is given.
pub fn new_account_id(group: u64, seed: Option<&[u8; 32]>) -> CustomerId {
    let bytes: [u8; 9] = match seed {
        Some(seed) => seed[16..25].try_into().expect("9 bytes"),
        None => rand::random(),
    };
    let random: String = URL_SAFE_NO_PAD
        .encode(bytes)
        .chars()
        .map(|c| if c == '_' { 'x' } else { c })
        .collect();
    CustomerId::new(&format!("u.{group}.{random}")).expect("a valid customer id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AuthKeys {
        AuthKeys::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn tokens_verify_and_tampering_fails() {
        let keys = keys();
        let alice = CustomerId::new("u.1.abc").unwrap();
        let token = keys.access_token(&alice, "customer", "eu-west", Some(3));
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid), ("u.1.abc", Some(3)));

        // Another secret, a changed payload, and alg=none are all refused.
        let other = AuthKeys::new(
            b"another-secret-another-secret-xx",
            Duration::from_secs(60),
            Duration::from_secs(1),
        );
        assert_eq!(other.verify(&token).unwrap_err().code, "invalid_token");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("customer", "operator"));
        assert_eq!(keys.verify(&parts.join(".")).unwrap_err().code, "invalid_token");
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", token.split('.').nth(1).unwrap());
        assert_eq!(keys.verify(&unsigned).unwrap_err().code, "invalid_token");
    }

    #[test]
    fn expired_tokens_say_so() {
        let keys = keys();
        let claims = Claims {
            sub: "u.1.abc".into(),
            role: "customer".into(),
            region: "eu-west".into(),
            sid: None,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: 1,
            exp: 2,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token).unwrap_err().code, "token_expired");
    }

    #[test]
    fn refresh_tokens_round_trip_and_garbage_is_refused() {
        let token = RefreshToken {
            group: 3,
            session_id: 77,
            secret: RefreshToken::new_secret(),
        };
        assert_eq!(RefreshToken::parse(&token.render()).unwrap(), token);
        for bad in ["", "rt1.3.77", "rt2.3.77.x", "rt1.a.77.xxx", "rt1.3.77.short"] {
            assert!(RefreshToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn staff_act_for_others_and_customers_only_for_themselves() {
        let alice = CustomerId::new("u.1.alice").unwrap();
        let customer = Caller::User {
            customer_id: alice.clone(),
            role: Role::Customer,
            region: "eu-west".into(),
        };
        assert_eq!(customer.holder(None).unwrap(), alice);
        assert_eq!(customer.holder(Some("u.1.alice")).unwrap(), alice);
        assert_eq!(customer.holder(Some("u.1.bob")).unwrap_err().code, "forbidden");
        assert_eq!(Caller::Operator.holder(Some("c7")).unwrap().as_str(), "c7");
        assert_eq!(Caller::Operator.holder(None).unwrap_err().code, "invalid_request");
        assert_eq!(
            Caller::Anonymous.holder(Some("c7")).unwrap_err().code,
            "unauthorized"
        );
        assert!(!customer.may_see(&CustomerId::new("u.1.bob").unwrap()));
        assert!(Caller::Operator.may_see(&alice));
    }

    #[test]
    fn account_and_guest_ids_are_distinct_and_valid() {
        let id = new_account_id(4, None);
        assert_eq!(
            new_account_id(4, Some(&[1; 32])),
            new_account_id(4, Some(&[1; 32]))
        );
        assert!(id.as_str().starts_with("u.4."));
        assert_eq!(router::account_group_of(&id), Some(4));
        let guest = new_guest_id(4);
        assert_ne!(guest, new_guest_id(4), "guest ids are random, not derived");
        assert_eq!(router::account_group_of(&guest), Some(4));
    }
}
