//! Account routes: register, login, refresh, logout, me, guests, and the
//! operator's user administration.
//!
//! An account is written to its region's accounts group through the router,
//! so it is as durable as a booking and never leaves that group's replicas.
//! Its e-mail address is first claimed in the metadata group under a keyed
//! hash, which keeps one account per address across regions and tells login
//! where the account lives. Passwords are verified here, at the edge.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use booking::accounts::check_email;
use booking::{
    AccountAnswer, AccountCommand, AccountQuery, AccountSuccess, Command, CustomerId, EmailClaim, META_GROUP,
    NewAccount, RegionId, Rejection, RequestId, Role, SessionGrant, Success, TokenHash,
};
use booking::{Query, QueryResult};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::{self, AuthKeys, Caller, RefreshToken};
use crate::{ApiJson, ApiPath, ApiResult, AppState, Problem, dto, request_id, scoped_request_id};

fn keys(state: &AppState) -> Result<&AuthKeys, Problem> {
    state.auth.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_disabled",
            "this node has no [auth] configured, so accounts are off",
        )
    })
}

/// The keys, for a handler that signs an access token: refused before
/// anything is written while this node's clock is suspect (it would stamp
/// `iat` and `exp` with a clock its peers disagree with: an hour fast, a
/// token that outlives its hour). A refused refresh has not rotated its
/// token; the client retries on another node.
fn signing_keys(state: &AppState) -> Result<&AuthKeys, Problem> {
    let keys = keys(state)?;
    let clock = state.router.groups().clock();
    if clock.is_suspect() {
        let why = clock
            .snapshot()
            .reason
            .unwrap_or_else(|| "it is beyond the maximum offset".to_owned());
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "clock_suspect",
            format!("this node's clock is suspect ({why}), so it signs no tokens; retry on another node"),
        ));
    }
    Ok(keys)
}

/// The keyed hash an address is claimed under: readable only with the cluster secret.
fn email_key(keys: &AuthKeys, email: &str) -> TokenHash {
    Sha256::new()
        .chain_update(keys.derivation_secret())
        .chain_update(b"email:")
        .chain_update(email.as_bytes())
        .finalize()
        .into()
}

/// Claims the address keyed `email_key` for `wanted` in the metadata group;
/// returns whoever holds it.
async fn claim_email(
    state: &AppState,
    email_key: TokenHash,
    wanted: EmailClaim,
) -> Result<EmailClaim, Problem> {
    let command = Command::Account(AccountCommand::ClaimEmail {
        email_key,
        claim: wanted,
    });
    match state
        .router
        .submit_to_group(META_GROUP, fresh_id(), command)
        .await??
    {
        Success::Account(AccountSuccess::EmailClaimed { claim, .. }) => Ok(claim),
        other => Err(Problem::unexpected(&other)),
    }
}

/// A request id no client chose, for internal steps that must not be merged
/// with anything else.
fn fresh_id() -> RequestId {
    RequestId::new(&uuid::Uuid::new_v4().to_string()).expect("a uuid is a valid request id")
}

fn normalise_email(raw: &str) -> Result<String, Problem> {
    let email = raw.trim().to_lowercase();
    check_email(&email).map_err(|e| Problem::invalid_field("email", e))?;
    Ok(email)
}

fn check_name(name: &str) -> Result<(), Problem> {
    if name.trim().is_empty() || name.len() > booking::accounts::MAX_NAME_LEN {
        return Err(Problem::invalid_field(
            "name",
            "must be 1 to 200 bytes, not blank",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Problem::invalid_field(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The accounts group of `region`, or `unknown_region`.
fn accounts_group(state: &AppState, region: &RegionId) -> Result<u64, Problem> {
    state
        .router
        .with_local_map(|map| map.accounts_group(region.as_str()))
        .flatten()
        .ok_or_else(|| {
            Problem::from(Rejection::UnknownRegion {
                region: region.to_string(),
            })
        })
}

/// The token pair; the refresh token's expiry also in RFC 3339 in the
/// account's home region's zone (`zone`).
fn token_body(
    keys: &AuthKeys,
    grant: &SessionGrant,
    group: u64,
    secret: String,
    zone: Option<&str>,
) -> dto::Tokens {
    let refresh = RefreshToken {
        group,
        session_id: grant.session_id,
        secret,
    };
    dto::Tokens {
        customer_id: grant.customer_id.clone(),
        role: grant.role.into(),
        region: grant.region.clone(),
        token_type: "Bearer".to_owned(),
        access_token: keys.access_token(
            &grant.customer_id,
            grant.role.as_str(),
            grant.region.as_str(),
            Some(grant.session_id),
        ),
        expires_in: keys.access_ttl.as_secs(),
        refresh_token: Some(refresh.render()),
        refresh_expires_at_ms: Some(grant.expires_at_ms),
        refresh_expires_at: dto::time_in(grant.expires_at_ms, zone),
        account: None,
    }
}

/// Starts a session for an account and renders the token pair.
async fn start_session(
    state: &AppState,
    keys: &AuthKeys,
    group: u64,
    customer_id: CustomerId,
) -> Result<dto::Tokens, Problem> {
    let secret = RefreshToken::new_secret();
    let command = Command::Account(AccountCommand::StartSession {
        customer_id,
        token_hash: auth::token_hash(&secret),
        ttl_ms: keys.refresh_ttl.as_millis() as u64,
    });
    match state.router.submit_to_group(group, fresh_id(), command).await?? {
        Success::Account(AccountSuccess::SessionStarted(grant)) => {
            let zone = crate::regions::zone_of(state, &grant.region);
            Ok(token_body(keys, &grant, group, secret, zone.as_deref()))
        }
        other => Err(Problem::unexpected(&other)),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    email: String,
    password: String,
    name: String,
    /// Where the account lives; default: the region of the node asked.
    region: Option<RegionId>,
}

/// Writes an account. A retry with the same `Idempotency-Key` must propose
/// the same command, so the id's random part and the password salt are
/// derived from the key with the node secret when a key is given.
async fn register_account(
    state: &AppState,
    headers: &HeaderMap,
    body: RegisterBody,
    role: Role,
) -> Result<(u64, booking::AccountView), Problem> {
    let keys = keys(state)?;
    let email = normalise_email(&body.email)?;
    check_name(&body.name)?;
    auth::check_password(&body.password)?;
    let region = body.region.unwrap_or_else(|| state.router.region().clone());
    let group = accounts_group(state, &region)?;
    // Anyone may register, so a key is scoped to the address it registers.
    let id = scoped_request_id(headers, &format!("register:{email}"))?;
    let seed: Option<[u8; 32]> = headers.get("idempotency-key").map(|_| {
        let mut hasher = Sha256::new();
        hasher.update(keys.derivation_secret());
        hasher.update(id.as_str().as_bytes());
        hasher.update(email.as_bytes());
        hasher.finalize().into()
    });
    let wanted = EmailClaim {
        customer_id: auth::new_account_id(group, seed.as_ref()),
        region,
    };
    let claim = claim_email(state, email_key(keys, &email), wanted.clone()).await?;
    if claim != wanted {
        // Someone holds the address. If their account exists, it is taken;
        // if not, an earlier registration stopped after claiming it, and
        // this one finishes it, in the claim's region under its id.
        let existing = state
            .router
            .query(Query::Account(AccountQuery::Account(claim.customer_id.clone())))
            .await?;
        if let QueryResult::Account(AccountAnswer::Account(Some(_))) = existing {
            return Err(Problem::from(Rejection::EmailTaken));
        }
    }
    let group = router::account_group_of(&claim.customer_id)
        .ok_or_else(|| Problem::internal("an e-mail claim names a customer without an accounts group"))?;
    let permit = state.logins.hash_permit()?;
    let password_hash =
        auth::hash_password(body.password, seed.map(|s| s[..16].try_into().expect("16 bytes"))).await?;
    drop(permit);
    let command = Command::Account(AccountCommand::Register {
        customer_id: claim.customer_id,
        account: NewAccount {
            email,
            name: body.name.trim().to_owned(),
            region: claim.region,
            role,
            password_hash,
        },
    });
    match state.router.submit_to_group(group, id, command).await?? {
        Success::Account(AccountSuccess::Registered(view)) => Ok((group, view)),
        other => Err(Problem::unexpected(&other)),
    }
}

pub(crate) async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterBody>,
) -> ApiResult {
    // Checked before the account is made, not only before the token.
    signing_keys(&state)?;
    let (group, account) = register_account(&state, &headers, body, Role::Customer).await?;
    let keys = keys(&state)?;
    let mut tokens = start_session(&state, keys, group, account.customer_id.clone()).await?;
    tokens.account = Some(crate::regions::account(&state, account));
    Ok((StatusCode::CREATED, Json(tokens)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    crate::limits::ClientIp(ip): crate::limits::ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult {
    let keys = signing_keys(&state)?;
    let email = normalise_email(&body.email)?;
    // Throttled attempts and a node at its hashing capacity are refused
    // before anything is read or hashed.
    state.logins.check(&email, ip)?;
    let permit = state.logins.hash_permit()?;
    let claim = match state
        .router
        .query(Query::Account(AccountQuery::EmailClaim(email_key(keys, &email))))
        .await?
    {
        QueryResult::Account(AccountAnswer::EmailClaim(claim)) => claim,
        _ => None,
    };
    let mut found = None;
    if let Some(group) = claim.and_then(|c| router::account_group_of(&c.customer_id))
        && let QueryResult::Account(AccountAnswer::ByEmail(Some(account))) = state
            .router
            .query_group(group, Query::Account(AccountQuery::ByEmail(email.clone())))
            .await?
    {
        found = Some((group, account));
    }
    let stored = found
        .as_ref()
        .map(|(_, (_, record))| record.password_hash.clone());
    let verified = auth::verify_password(body.password, stored).await;
    drop(permit);
    if !verified {
        state.logins.failed(&email, ip);
        return Err(Problem::unauthorized(
            "invalid_credentials",
            "the e-mail address or password is wrong",
        ));
    }
    state.logins.succeeded(&email);
    let (group, (customer_id, _)) = found.expect("a verified password has an account");
    let tokens = start_session(&state, keys, group, customer_id).await?;
    Ok(Json(tokens).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

pub(crate) async fn refresh(State(state): State<AppState>, ApiJson(body): ApiJson<RefreshBody>) -> ApiResult {
    let keys = signing_keys(&state)?;
    let presented = RefreshToken::parse(&body.refresh_token)?;
    let secret = RefreshToken::new_secret();
    let command = Command::Account(AccountCommand::RotateSession {
        session_id: presented.session_id,
        presented: auth::token_hash(&presented.secret),
        next: auth::token_hash(&secret),
        ttl_ms: keys.refresh_ttl.as_millis() as u64,
    });
    known_group(&state, presented.group)?;
    match state
        .router
        .submit_to_group(presented.group, fresh_id(), command)
        .await??
    {
        Success::Account(AccountSuccess::SessionRotated(grant)) => {
            let zone = crate::regions::zone_of(&state, &grant.region);
            Ok(Json(token_body(keys, &grant, presented.group, secret, zone.as_deref())).into_response())
        }
        Success::Account(AccountSuccess::SessionRevoked { .. }) => Err(Problem::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; the session is revoked, log in again",
        )),
        other => Err(Problem::unexpected(&other)),
    }
}

/// A refresh token naming a group the map does not have is garbage, not a
/// reason to retry until the router gives up.
fn known_group(state: &AppState, group: u64) -> Result<(), Problem> {
    let known = state
        .router
        .with_local_map(|map| group != booking::META_GROUP && map.groups.contains_key(&group))
        .unwrap_or(false);
    if known {
        Ok(())
    } else {
        Err(Problem::unauthorized(
            "session_invalid",
            "the refresh token is invalid",
        ))
    }
}

pub(crate) async fn logout(State(state): State<AppState>, ApiJson(body): ApiJson<RefreshBody>) -> ApiResult {
    keys(&state)?;
    let presented = RefreshToken::parse(&body.refresh_token)?;
    known_group(&state, presented.group)?;
    let command = Command::Account(AccountCommand::EndSession {
        session_id: presented.session_id,
        presented: auth::token_hash(&presented.secret),
    });
    match state
        .router
        .submit_to_group(presented.group, fresh_id(), command)
        .await??
    {
        Success::Account(AccountSuccess::SessionEnded { .. }) => Ok(StatusCode::NO_CONTENT.into_response()),
        other => Err(Problem::unexpected(&other)),
    }
}

pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult {
    match caller {
        Caller::Anonymous => Err(auth::login_required()),
        Caller::Operator => Ok(Json(json!({ "role": "operator", "customer_id": null })).into_response()),
        Caller::Guest { customer_id, region } => Ok(Json(
            json!({ "role": "guest", "customer_id": customer_id, "region": region }),
        )
        .into_response()),
        Caller::User { customer_id, .. } => match state
            .router
            .query(Query::Account(AccountQuery::Account(customer_id)))
            .await?
        {
            QueryResult::Account(AccountAnswer::Account(Some(view))) => {
                Ok(Json(crate::regions::account(&state, view)).into_response())
            }
            _ => Err(Problem::from(Rejection::UnknownAccount)),
        },
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuestBody {
    email: String,
}

/// How long a guest's code is valid.
const GUEST_CODE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The keyed hash a guest code is stored under: six digits are few, so the
/// hash is keyed with the cluster secret, not readable from a stolen disk.
fn code_hash(keys: &AuthKeys, challenge_group: u64, code: &str) -> TokenHash {
    Sha256::new()
        .chain_update(keys.derivation_secret())
        .chain_update(b"guest-code:")
        .chain_update(challenge_group.to_be_bytes())
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// The key under which an address's guest identity is claimed (apart from
/// its account's, so an address may have both).
fn guest_email_key(keys: &AuthKeys, email: &str) -> TokenHash {
    email_key(keys, &format!("guest:{email}"))
}

/// `POST /v1/auth/guest`: sends a one-time code to the address. Only a
/// guest who enters it (`/v1/auth/guest/verify`) gets a guest token, for the
/// address's one guest identity: knowing an address is not enough to act as
/// its owner, and a new address per purchase needs a new mailbox.
pub(crate) async fn guest(
    State(state): State<AppState>,
    crate::limits::ClientIp(ip): crate::limits::ClientIp,
    ApiJson(body): ApiJson<GuestBody>,
) -> ApiResult {
    let keys = keys(&state)?;
    let sender = state.codes.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "guests_disabled",
            "this node cannot send verification codes, so guest checkout is off",
        )
    })?;
    let email = normalise_email(&body.email)?;
    state.logins.check_code(&email, ip)?;
    let region = state.router.region().clone();
    let group = accounts_group(&state, &region)?;
    let wanted = EmailClaim {
        customer_id: auth::new_guest_id(group),
        region,
    };
    let claim = claim_email(&state, guest_email_key(keys, &email), wanted).await?;
    let home = router::account_group_of(&claim.customer_id)
        .ok_or_else(|| Problem::internal("a guest claim names an id without an accounts group"))?;
    let code = format!("{:06}", rand::random_range(0..1_000_000u32));
    let command = Command::Account(AccountCommand::StartGuestCheck {
        check: booking::accounts::NewGuestCheck {
            customer_id: claim.customer_id,
            email: email.clone(),
            region: claim.region,
            code_hash: code_hash(keys, home, &code),
            ttl_ms: GUEST_CODE_TTL.as_millis() as u64,
        },
    });
    let (challenge_id, expires_at_ms) =
        match state.router.submit_to_group(home, fresh_id(), command).await?? {
            Success::Account(AccountSuccess::GuestChallenge {
                challenge_id,
                expires_at_ms,
            }) => (challenge_id, expires_at_ms),
            other => return Err(Problem::unexpected(&other)),
        };
    state.logins.code_sent(&email, ip);
    if let Err(e) = sender
        .send_code(&email, &code, GUEST_CODE_TTL, crate::i18n::current())
        .await
    {
        tracing::warn!(error = %e, "guest code not sent");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "code_not_sent",
            "the code could not be sent to that address; try again shortly",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(dto::GuestChallenge {
            challenge_id: format!("gc.{home}.{challenge_id}"),
            expires_in: GUEST_CODE_TTL.as_secs(),
            expires_at_ms,
            sent_to: "email".to_owned(),
        }),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuestVerifyBody {
    challenge_id: String,
    code: String,
}

/// `POST /v1/auth/guest/verify`: the code from the e-mail, for a guest token.
pub(crate) async fn guest_verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GuestVerifyBody>,
) -> ApiResult {
    let keys = signing_keys(&state)?;
    let invalid = || Problem::from(Rejection::CodeInvalid);
    let mut parts = body.challenge_id.split('.');
    let (Some("gc"), Some(group), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let (Ok(group), Ok(challenge_id)) = (group.parse::<u64>(), id.parse::<u64>()) else {
        return Err(invalid());
    };
    known_group(&state, group).map_err(|_| invalid())?;
    let code = body.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::invalid_field("code", "the code is six digits"));
    }
    let command = Command::Account(AccountCommand::VerifyGuest {
        challenge_id,
        code_hash: code_hash(keys, group, code),
    });
    match state.router.submit_to_group(group, fresh_id(), command).await? {
        Ok(Success::Account(AccountSuccess::GuestVerified(guest))) => Ok(Json(dto::Tokens {
            access_token: keys.access_token(&guest.customer_id, "guest", guest.region.as_str(), None),
            customer_id: guest.customer_id,
            role: dto::Role::Guest,
            region: guest.region,
            token_type: "Bearer".to_owned(),
            expires_in: keys.access_ttl.as_secs(),
            refresh_token: None,
            refresh_expires_at_ms: None,
            refresh_expires_at: None,
            account: None,
        })
        .into_response()),
        Ok(Success::Account(AccountSuccess::GuestCodeWrong { attempts_left })) => {
            tracing::warn!(target: "boxoffice::security", challenge = %body.challenge_id, attempts_left, "wrong guest code");
            Err(invalid().with("attempts_left", json!(attempts_left)))
        }
        Ok(other) => Err(Problem::unexpected(&other)),
        Err(Rejection::CodeInvalid) => Err(invalid()),
        Err(other) => Err(Problem::from(other)),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserBody {
    email: String,
    password: String,
    name: String,
    region: Option<RegionId>,
    role: dto::Role,
}

/// Operators create organiser and operator accounts; no public route can.
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult {
    caller.require_operator()?;
    let register = RegisterBody {
        email: body.email,
        password: body.password,
        name: body.name,
        region: body.region,
    };
    let (_, account) = register_account(&state, &headers, register, body.role.into()).await?;
    Ok((
        StatusCode::CREATED,
        Json(crate::regions::account(&state, account)),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    role: dto::Role,
}

pub(crate) async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw_customer): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RoleBody>,
) -> ApiResult {
    caller.require_operator()?;
    let customer_id =
        CustomerId::new(&raw_customer).map_err(|e| Problem::invalid_field("customer_id", e.to_string()))?;
    let group =
        router::account_group_of(&customer_id).ok_or_else(|| Problem::from(Rejection::UnknownAccount))?;
    known_group(&state, group).map_err(|_| Problem::from(Rejection::UnknownAccount))?;
    let command = Command::Account(AccountCommand::SetRole {
        customer_id,
        role: body.role.into(),
    });
    match state
        .router
        .submit_to_group(group, request_id(&headers, &caller)?, command)
        .await??
    {
        Success::Account(AccountSuccess::Updated(view)) => {
            Ok(Json(crate::regions::account(&state, view)).into_response())
        }
        other => Err(Problem::unexpected(&other)),
    }
}
