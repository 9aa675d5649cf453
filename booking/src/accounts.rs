//! Accounts and refresh-token sessions, replicated like everything else.
//!
//! Accounts of a region live in that region's *accounts group* (the lowest-id
//! shared data group homed there, see `ClusterMap::accounts_group`), so personal
//! data is stored only on that group's replicas. A registered customer's id
//! names the group: `u.{group}.{random}`; the HTTP edge draws the random part.
//!
//! What the state machine does *not* do: hash or check passwords (argon2 salts
//! are random and hashing is slow, so the edge hashes before proposing and
//! verifies after reading), or sign tokens. It stores the hash, enforces that
//! an e-mail address has one account, and runs refresh-token rotation:
//!
//! - A session (a "token family") starts at login and is named by the log index
//!   of its entry. It stores the SHA-256 of its current refresh token and of
//!   the last few it replaced.
//! - Presenting the current token rotates it: a new hash, a later expiry.
//! - Presenting a replaced one means a token was stolen and replayed (or a
//!   client raced itself): the whole family is revoked, and that outcome is a
//!   success (`SessionRevoked`) because it changes state; the edge answers 401.
//! - Anything else (unknown session, expired, revoked, random bytes) is a
//!   `SessionInvalid` rejection that changes nothing.
//!
//! Sessions are deleted once their expiry passes, like holds.
//!
//! One account per e-mail address across all regions: before an account is
//! written to its region, the address is *claimed* in the metadata group
//! (which every region shares). A claim stores a keyed hash of the address
//! (the key is the cluster's secret, so the claim reveals nothing readable),
//! the account's id and region; a second claim of the same address gets the
//! first one back. Login finds the account's region the same way.
//!
//! # Guests
//!
//! A guest buys without a password, but only after proving the address: the
//! edge draws a one-time code, `StartGuestCheck` stores its keyed hash as a
//! challenge (valid for minutes, [`GUEST_CODE_ATTEMPTS`] tries), the code goes
//! to the address, and `VerifyGuest` with the right code creates (once) the
//! address's guest identity, an account with role `guest` and no password.
//! Each address has one guest identity across regions (claimed like an
//! account's, under another key), so per-customer limits count per verified
//! address, and knowing someone's address gives no access to their orders.
//! A wrong code is a state change (one try fewer), so it is a success
//! (`GuestCodeWrong`) that the edge answers 401; a challenge used up,
//! expired or unknown is the rejection `code_invalid`. Guest identities are
//! indexed apart from accounts: an address may have both.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::events::notices::Channel;
use crate::ids::{CustomerId, Millis, RegionId};
use crate::rejection::Rejection;

/// What the accounts of a region (and the metadata group's e-mail claims)
/// are asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountCommand {
    /// Claims an e-mail address for an account (metadata group).
    ClaimEmail { email_key: TokenHash, claim: EmailClaim },
    /// Creates an account (in its region's accounts group).
    Register {
        customer_id: CustomerId,
        account: NewAccount,
    },
    /// Changes an account's role (operators only, checked at the edge).
    SetRole { customer_id: CustomerId, role: Role },
    /// Starts a refresh-token session after the edge verified a password.
    StartSession {
        customer_id: CustomerId,
        token_hash: TokenHash,
        ttl_ms: u64,
    },
    /// Swaps a session's current refresh token for a new one.
    RotateSession {
        session_id: u64,
        presented: TokenHash,
        next: TokenHash,
        ttl_ms: u64,
    },
    /// Logs out: the session's tokens stop working.
    EndSession { session_id: u64, presented: TokenHash },
    /// Sets how an account wants to be notified.
    SetNotifications {
        customer_id: CustomerId,
        preference: NotifyPreference,
    },
    /// Stores a guest's one-time code (see "Guests").
    StartGuestCheck { check: NewGuestCheck },
    /// A guest enters the code of a challenge.
    VerifyGuest { challenge_id: u64, code_hash: TokenHash },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountSuccess {
    EmailClaimed {
        claim: EmailClaim,
        fresh: bool,
    },
    Registered(AccountView),
    Updated(AccountView),
    SessionStarted(SessionGrant),
    SessionRotated(SessionGrant),
    /// A replaced refresh token was presented again: the session is dead.
    SessionRevoked {
        session_id: u64,
    },
    SessionEnded {
        session_id: u64,
    },
    /// A guest's code was stored and may be sent.
    GuestChallenge {
        challenge_id: u64,
        expires_at_ms: Millis,
    },
    /// The code was wrong; the challenge has this many tries left (0: void).
    GuestCodeWrong {
        attempts_left: u8,
    },
    /// The code was right: the address's guest identity.
    GuestVerified(AccountView),
}

pub type AccountResponse = Result<AccountSuccess, Rejection>;

/// Reads of accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountQuery {
    /// An account, in the group its id names (`u.{group}.{..}`).
    Account(CustomerId),
    /// An account with its password hash, by e-mail address, in a region's
    /// accounts group (which the caller names).
    ByEmail(String),
    /// Who holds an e-mail address, by its keyed hash (metadata group).
    EmailClaim(TokenHash),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountAnswer {
    Account(Option<AccountView>),
    ByEmail(Option<(CustomerId, AccountRecord)>),
    EmailClaim(Option<EmailClaim>),
}

/// Where the accounts' records are kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccountKey {
    Account(CustomerId),
    /// A refresh-token session, by the log index that started it.
    Session(u64),
    /// Who holds an e-mail address, by its keyed hash (metadata group).
    EmailClaim(TokenHash),
    /// A guest's one-time code waiting to be entered, by the log index that sent it.
    GuestChallenge(u64),
}

/// The accounts' stored records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountValue {
    Account(AccountRecord),
    Session(SessionRecord),
    EmailClaim(EmailClaim),
    GuestChallenge(GuestChallenge),
}

/// Replaced refresh-token hashes a session remembers to detect replays.
pub const REMEMBERED_TOKENS: usize = 8;
/// Longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest display name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest stored password hash (a PHC string).
pub const MAX_PASSWORD_HASH_LEN: usize = 512;
/// Longest refresh-session lifetime.
pub const MAX_SESSION_TTL_MS: u64 = 90 * 24 * 60 * 60 * 1000;

/// The SHA-256 of a refresh token. Only hashes are stored.
pub type TokenHash = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Buys tickets; sees only their own holds, orders and tickets.
    Customer,
    /// An organiser: writes the catalog, sees every order, checks tickets in.
    Admin,
    /// Runs the cluster (the admin API), and may do what an admin does.
    Operator,
    /// A buyer without a password who proved their e-mail address with a
    /// one-time code (see "Guests" in the module doc). Never given by `SetRole`.
    Guest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Guest => "guest",
        }
    }
}

/// How long a guest's one-time code is valid at most.
pub const MAX_GUEST_CODE_TTL_MS: u64 = 30 * 60 * 1000;
/// Wrong codes a guest challenge takes before it is void.
pub const GUEST_CODE_ATTEMPTS: u8 = 5;

/// What `StartGuestCheck` asks for: a code (its keyed hash) for `email`,
/// valid for `ttl_ms`, for the guest identity `customer_id` unless the
/// address has one already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGuestCheck {
    pub customer_id: CustomerId,
    pub email: String,
    pub region: RegionId,
    pub code_hash: TokenHash,
    pub ttl_ms: u64,
}

/// A one-time code sent to an address, waiting to be entered (see "Guests").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestChallenge {
    /// The guest identity the address has (or will have) in this group.
    pub customer_id: CustomerId,
    pub email: String,
    pub region: RegionId,
    /// A keyed hash of the code (the edge keys it with the cluster secret).
    pub code_hash: TokenHash,
    pub expires_at_ms: Millis,
    pub attempts_left: u8,
}

/// What registration writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    /// Lower-cased by the edge; the state machine checks the shape again.
    pub email: String,
    pub name: String,
    pub region: RegionId,
    pub role: Role,
    /// An argon2id PHC string.
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub email: String,
    pub name: String,
    pub region: RegionId,
    pub role: Role,
    pub password_hash: String,
    pub created_at_ms: Millis,
    /// How the customer wants to be notified.
    pub notify: NotifyPreference,
}

/// Longest webhook URL an account may register.
pub const MAX_WEBHOOK_URL: usize = 500;

/// How a customer wants notices delivered when a notice names no channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyPreference {
    pub channel: Channel,
    /// Where webhook notices go; required for the webhook channel.
    pub webhook_url: Option<String>,
}

impl Default for NotifyPreference {
    fn default() -> Self {
        NotifyPreference {
            channel: Channel::Email,
            webhook_url: None,
        }
    }
}

impl NotifyPreference {
    /// Checks the URL's shape (an `http` or `https` URL of printable ASCII);
    /// whether it answers is the dispatcher's business.
    pub fn validate(&self) -> Result<(), Rejection> {
        if let Some(url) = &self.webhook_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.len() > MAX_WEBHOOK_URL || !url.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return Err(Rejection::InvalidRequest(format!(
                    "webhook_url must be an http:// or https:// URL of at most {MAX_WEBHOOK_URL} characters"
                )));
            }
        }
        if self.channel == Channel::Webhook && self.webhook_url.is_none() {
            return Err(Rejection::InvalidRequest(
                "the webhook channel needs a webhook_url".to_owned(),
            ));
        }
        Ok(())
    }
}

/// An account as clients see it: everything but the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub customer_id: CustomerId,
    pub email: String,
    pub name: String,
    pub region: RegionId,
    pub role: Role,
    pub created_at_ms: Millis,
    pub notify: NotifyPreference,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub customer_id: CustomerId,
    pub current: TokenHash,
    /// The most recently replaced hashes, newest last, at most `REMEMBERED_TOKENS`.
    pub replaced: Vec<TokenHash>,
    /// How many times the token was rotated.
    pub generation: u32,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    pub revoked: bool,
}

/// Who holds an e-mail address: stored in the metadata group under a keyed
/// hash of the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaim {
    pub customer_id: CustomerId,
    pub region: RegionId,
}

/// What a session command tells the edge, which then signs an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    pub session_id: u64,
    pub customer_id: CustomerId,
    pub role: Role,
    pub region: RegionId,
    pub generation: u32,
    pub expires_at_ms: Millis,
}

/// A shape check shared by the edge (for a field-level message) and the state
/// machine (so that a bad entry cannot be stored whoever proposed it).
pub fn check_email(email: &str) -> Result<(), String> {
    let Some((local, domain)) = email.split_once('@') else {
        return Err("email must contain '@'".to_owned());
    };
    if email.len() > MAX_EMAIL_LEN {
        return Err(format!("email must be at most {MAX_EMAIL_LEN} characters"));
    }
    if local.is_empty() || domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err("email must look like name@example.org".to_owned());
    }
    if domain.starts_with('.') || domain.ends_with('.') {
        return Err("email domain must not start or end with '.'".to_owned());
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c.is_ascii_uppercase())
    {
        return Err("email must be lower-case with no spaces".to_owned());
    }
    Ok(())
}

/// Every account and session of one group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    accounts: BTreeMap<CustomerId, AccountRecord>,
    /// Derived: e-mail address → account (registered accounts only).
    emails: BTreeMap<String, CustomerId>,
    /// Derived: e-mail address → guest identity.
    guest_emails: BTreeMap<String, CustomerId>,
    /// Guest challenges by the log index that started them.
    challenges: BTreeMap<u64, GuestChallenge>,
    /// Derived: challenges by expiry.
    challenge_expiry: BTreeSet<(Millis, u64)>,
    sessions: BTreeMap<u64, SessionRecord>,
    /// Derived: sessions by expiry.
    session_expiry: BTreeSet<(Millis, u64)>,
    /// E-mail claims by keyed hash (metadata group only).
    claims: BTreeMap<TokenHash, EmailClaim>,
}

impl Accounts {
    /// Runs an account command, marking what it writes in `dirty`.
    pub fn execute(
        &mut self,
        now: Millis,
        log_index: u64,
        dirty: &mut BTreeSet<AccountKey>,
        command: &AccountCommand,
    ) -> AccountResponse {
        match command {
            AccountCommand::ClaimEmail { email_key, claim } => self.claim_email(dirty, *email_key, claim),
            AccountCommand::Register { customer_id, account } => {
                self.register(now, dirty, customer_id, account)
            }
            AccountCommand::SetRole { customer_id, role } => self.set_role(dirty, customer_id, *role),
            AccountCommand::StartSession {
                customer_id,
                token_hash,
                ttl_ms,
            } => self.start_session(now, log_index, dirty, customer_id, *token_hash, *ttl_ms),
            AccountCommand::RotateSession {
                session_id,
                presented,
                next,
                ttl_ms,
            } => self.rotate_session(now, dirty, *session_id, presented, *next, *ttl_ms),
            AccountCommand::EndSession {
                session_id,
                presented,
            } => self.end_session(dirty, *session_id, presented),
            AccountCommand::SetNotifications {
                customer_id,
                preference,
            } => self.set_notify(dirty, customer_id, preference),
            AccountCommand::StartGuestCheck { check } => self.start_guest_check(now, log_index, dirty, check),
            AccountCommand::VerifyGuest {
                challenge_id,
                code_hash,
            } => self.verify_guest(now, dirty, *challenge_id, code_hash),
        }
    }

    pub fn query(&self, query: &AccountQuery) -> AccountAnswer {
        match query {
            AccountQuery::Account(customer_id) => AccountAnswer::Account(self.view(customer_id)),
            AccountQuery::ByEmail(email) => AccountAnswer::ByEmail(self.by_email(email)),
            AccountQuery::EmailClaim(key) => AccountAnswer::EmailClaim(self.claim(key)),
        }
    }

    pub fn register(
        &mut self,
        now: Millis,
        dirty: &mut BTreeSet<AccountKey>,
        customer_id: &CustomerId,
        new: &NewAccount,
    ) -> AccountResponse {
        check_email(&new.email).map_err(Rejection::InvalidRequest)?;
        if new.name.trim().is_empty() || new.name.len() > MAX_NAME_LEN {
            return Err(Rejection::InvalidRequest(format!(
                "name must be 1..={MAX_NAME_LEN} bytes"
            )));
        }
        if new.password_hash.is_empty() || new.password_hash.len() > MAX_PASSWORD_HASH_LEN {
            return Err(Rejection::InvalidRequest(
                "password hash has the wrong size".to_owned(),
            ));
        }
        if self.emails.contains_key(&new.email) {
            return Err(Rejection::EmailTaken);
        }
        if self.accounts.contains_key(customer_id) {
            return Err(Rejection::AccountExists);
        }
        let record = AccountRecord {
            email: new.email.clone(),
            name: new.name.clone(),
            region: new.region.clone(),
            role: new.role,
            password_hash: new.password_hash.clone(),
            created_at_ms: now,
            notify: NotifyPreference::default(),
        };
        self.emails.insert(record.email.clone(), customer_id.clone());
        self.accounts.insert(customer_id.clone(), record);
        dirty.insert(AccountKey::Account(customer_id.clone()));
        Ok(AccountSuccess::Registered(
            self.view(customer_id).expect("just inserted"),
        ))
    }

    /// Claims an address for `claim`; if it is claimed already, the existing
    /// claim is the answer (`fresh: false`) and nothing changes.
    pub fn claim_email(
        &mut self,
        dirty: &mut BTreeSet<AccountKey>,
        email_key: TokenHash,
        claim: &EmailClaim,
    ) -> AccountResponse {
        if let Some(existing) = self.claims.get(&email_key) {
            return Ok(AccountSuccess::EmailClaimed {
                claim: existing.clone(),
                fresh: false,
            });
        }
        self.claims.insert(email_key, claim.clone());
        dirty.insert(AccountKey::EmailClaim(email_key));
        Ok(AccountSuccess::EmailClaimed {
            claim: claim.clone(),
            fresh: true,
        })
    }

    pub fn claim(&self, email_key: &TokenHash) -> Option<EmailClaim> {
        self.claims.get(email_key).cloned()
    }

    pub fn set_role(
        &mut self,
        dirty: &mut BTreeSet<AccountKey>,
        customer_id: &CustomerId,
        role: Role,
    ) -> AccountResponse {
        let account = self
            .accounts
            .get_mut(customer_id)
            .ok_or(Rejection::UnknownAccount)?;
        if role == Role::Guest || account.role == Role::Guest {
            return Err(Rejection::InvalidRequest(
                "guest identities have no role to change, and no account becomes a guest".to_owned(),
            ));
        }
        account.role = role;
        dirty.insert(AccountKey::Account(customer_id.clone()));
        Ok(AccountSuccess::Updated(self.view(customer_id).expect("exists")))
    }

    pub fn start_session(
        &mut self,
        now: Millis,
        log_index: u64,
        dirty: &mut BTreeSet<AccountKey>,
        customer_id: &CustomerId,
        token_hash: TokenHash,
        ttl_ms: u64,
    ) -> AccountResponse {
        check_ttl(ttl_ms)?;
        let account = self
            .accounts
            .get(customer_id)
            .filter(|a| a.role != Role::Guest)
            .ok_or(Rejection::UnknownAccount)?;
        let record = SessionRecord {
            customer_id: customer_id.clone(),
            current: token_hash,
            replaced: Vec::new(),
            generation: 0,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(ttl_ms),
            revoked: false,
        };
        let grant = grant(log_index, account, &record);
        self.session_expiry.insert((record.expires_at_ms, log_index));
        self.sessions.insert(log_index, record);
        dirty.insert(AccountKey::Session(log_index));
        Ok(AccountSuccess::SessionStarted(grant))
    }

    pub fn rotate_session(
        &mut self,
        now: Millis,
        dirty: &mut BTreeSet<AccountKey>,
        session_id: u64,
        presented: &TokenHash,
        next: TokenHash,
        ttl_ms: u64,
    ) -> AccountResponse {
        check_ttl(ttl_ms)?;
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(Rejection::SessionInvalid)?;
        if session.revoked {
            return Err(Rejection::SessionInvalid);
        }
        if session.replaced.contains(presented) {
            // A replayed token: whoever holds the current one may be a thief.
            session.revoked = true;
            dirty.insert(AccountKey::Session(session_id));
            return Ok(AccountSuccess::SessionRevoked { session_id });
        }
        if session.current != *presented {
            return Err(Rejection::SessionInvalid);
        }
        let account = self
            .accounts
            .get(&session.customer_id)
            .ok_or(Rejection::UnknownAccount)?;
        let old = std::mem::replace(&mut session.current, next);
        session.replaced.push(old);
        if session.replaced.len() > REMEMBERED_TOKENS {
            session.replaced.remove(0);
        }
        session.generation = session.generation.saturating_add(1);
        self.session_expiry.remove(&(session.expires_at_ms, session_id));
        session.expires_at_ms = now.saturating_add(ttl_ms);
        self.session_expiry.insert((session.expires_at_ms, session_id));
        dirty.insert(AccountKey::Session(session_id));
        Ok(AccountSuccess::SessionRotated(grant(
            session_id, account, session,
        )))
    }

    pub fn end_session(
        &mut self,
        dirty: &mut BTreeSet<AccountKey>,
        session_id: u64,
        presented: &TokenHash,
    ) -> AccountResponse {
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(Rejection::SessionInvalid)?;
        if session.revoked || session.current != *presented {
            return Err(Rejection::SessionInvalid);
        }
        session.revoked = true;
        dirty.insert(AccountKey::Session(session_id));
        Ok(AccountSuccess::SessionEnded { session_id })
    }

    /// Deletes sessions and guest challenges whose expiry is at or before `now`.
    pub fn expire_sessions(&mut self, now: Millis, dirty: &mut BTreeSet<AccountKey>) {
        while let Some(&(expires_at_ms, session_id)) = self.session_expiry.first() {
            if expires_at_ms > now {
                break;
            }
            self.session_expiry.pop_first();
            self.sessions.remove(&session_id);
            dirty.insert(AccountKey::Session(session_id));
        }
        while let Some(&(expires_at_ms, challenge_id)) = self.challenge_expiry.first() {
            if expires_at_ms > now {
                break;
            }
            self.challenge_expiry.pop_first();
            self.challenges.remove(&challenge_id);
            dirty.insert(AccountKey::GuestChallenge(challenge_id));
        }
    }

    /// Stores a one-time code for `email` (see "Guests"). The guest identity
    /// the address already has in this group wins over `customer_id`.
    pub fn start_guest_check(
        &mut self,
        now: Millis,
        log_index: u64,
        dirty: &mut BTreeSet<AccountKey>,
        check: &NewGuestCheck,
    ) -> AccountResponse {
        let NewGuestCheck {
            customer_id,
            email,
            region,
            code_hash,
            ttl_ms,
        } = check;
        let (email, code_hash, ttl_ms) = (email.as_str(), *code_hash, *ttl_ms);
        check_email(email).map_err(Rejection::InvalidRequest)?;
        if ttl_ms == 0 || ttl_ms > MAX_GUEST_CODE_TTL_MS {
            return Err(Rejection::InvalidRequest(format!(
                "a guest code lives 1..={MAX_GUEST_CODE_TTL_MS} ms"
            )));
        }
        let customer_id = self
            .guest_emails
            .get(email)
            .cloned()
            .unwrap_or_else(|| customer_id.clone());
        if self
            .accounts
            .get(&customer_id)
            .is_some_and(|a| a.role != Role::Guest)
        {
            return Err(Rejection::AccountExists);
        }
        let challenge = GuestChallenge {
            customer_id,
            email: email.to_owned(),
            region: region.clone(),
            code_hash,
            expires_at_ms: now.saturating_add(ttl_ms),
            attempts_left: GUEST_CODE_ATTEMPTS,
        };
        let expires_at_ms = challenge.expires_at_ms;
        self.challenge_expiry.insert((expires_at_ms, log_index));
        self.challenges.insert(log_index, challenge);
        dirty.insert(AccountKey::GuestChallenge(log_index));
        Ok(AccountSuccess::GuestChallenge {
            challenge_id: log_index,
            expires_at_ms,
        })
    }

    /// Checks a guest's code: right, the guest identity (created on first
    /// use); wrong, one try fewer.
    pub fn verify_guest(
        &mut self,
        now: Millis,
        dirty: &mut BTreeSet<AccountKey>,
        challenge_id: u64,
        code_hash: &TokenHash,
    ) -> AccountResponse {
        let challenge = self
            .challenges
            .get_mut(&challenge_id)
            .filter(|c| c.expires_at_ms > now)
            .ok_or(Rejection::CodeInvalid)?;
        if challenge.code_hash != *code_hash {
            challenge.attempts_left = challenge.attempts_left.saturating_sub(1);
            let attempts_left = challenge.attempts_left;
            if attempts_left == 0 {
                let expires_at_ms = challenge.expires_at_ms;
                self.challenges.remove(&challenge_id);
                self.challenge_expiry.remove(&(expires_at_ms, challenge_id));
            }
            dirty.insert(AccountKey::GuestChallenge(challenge_id));
            return Ok(AccountSuccess::GuestCodeWrong { attempts_left });
        }
        let challenge = self.challenges.remove(&challenge_id).expect("found above");
        self.challenge_expiry
            .remove(&(challenge.expires_at_ms, challenge_id));
        dirty.insert(AccountKey::GuestChallenge(challenge_id));
        let customer_id = challenge.customer_id;
        if !self.accounts.contains_key(&customer_id) {
            let record = AccountRecord {
                email: challenge.email.clone(),
                name: String::new(),
                region: challenge.region,
                role: Role::Guest,
                password_hash: String::new(),
                created_at_ms: now,
                notify: NotifyPreference::default(),
            };
            self.guest_emails.insert(challenge.email, customer_id.clone());
            self.accounts.insert(customer_id.clone(), record);
            dirty.insert(AccountKey::Account(customer_id.clone()));
        }
        Ok(AccountSuccess::GuestVerified(
            self.view(&customer_id).expect("exists"),
        ))
    }

    pub fn view(&self, customer_id: &CustomerId) -> Option<AccountView> {
        let account = self.accounts.get(customer_id)?;
        Some(AccountView {
            customer_id: customer_id.clone(),
            email: account.email.clone(),
            name: account.name.clone(),
            region: account.region.clone(),
            role: account.role,
            created_at_ms: account.created_at_ms,
            notify: account.notify.clone(),
        })
    }

    /// Sets how the customer wants to be notified.
    pub fn set_notify(
        &mut self,
        dirty: &mut BTreeSet<AccountKey>,
        customer_id: &CustomerId,
        preference: &NotifyPreference,
    ) -> AccountResponse {
        preference.validate()?;
        let account = self
            .accounts
            .get_mut(customer_id)
            .ok_or(Rejection::UnknownAccount)?;
        account.notify = preference.clone();
        dirty.insert(AccountKey::Account(customer_id.clone()));
        Ok(AccountSuccess::Updated(self.view(customer_id).expect("exists")))
    }

    /// The account with its password hash, for the edge to verify a login.
    pub fn by_email(&self, email: &str) -> Option<(CustomerId, AccountRecord)> {
        let customer_id = self.emails.get(email)?;
        Some((customer_id.clone(), self.accounts.get(customer_id)?.clone()))
    }

    pub fn record(&self, key: &AccountKey) -> Option<AccountValue> {
        match key {
            AccountKey::GuestChallenge(id) => {
                self.challenges.get(id).cloned().map(AccountValue::GuestChallenge)
            }
            AccountKey::Account(id) => self.accounts.get(id).cloned().map(AccountValue::Account),
            AccountKey::Session(id) => self.sessions.get(id).cloned().map(AccountValue::Session),
            AccountKey::EmailClaim(key) => self.claims.get(key).cloned().map(AccountValue::EmailClaim),
        }
    }

    pub fn append_records(&self, out: &mut Vec<(AccountKey, AccountValue)>) {
        for (id, account) in &self.accounts {
            out.push((
                AccountKey::Account(id.clone()),
                AccountValue::Account(account.clone()),
            ));
        }
        for (id, session) in &self.sessions {
            out.push((AccountKey::Session(*id), AccountValue::Session(session.clone())));
        }
        for (key, claim) in &self.claims {
            out.push((
                AccountKey::EmailClaim(*key),
                AccountValue::EmailClaim(claim.clone()),
            ));
        }
        for (id, challenge) in &self.challenges {
            out.push((
                AccountKey::GuestChallenge(*id),
                AccountValue::GuestChallenge(challenge.clone()),
            ));
        }
    }

    /// Loads one record; a value of another kind than its key is refused.
    pub fn load(&mut self, key: &AccountKey, record: AccountValue) -> Result<(), String> {
        match (key, record) {
            (AccountKey::Account(id), AccountValue::Account(account)) => {
                let index = if account.role == Role::Guest {
                    &mut self.guest_emails
                } else {
                    &mut self.emails
                };
                if index.insert(account.email.clone(), id.clone()).is_some() {
                    return Err(format!("e-mail {} has two accounts", account.email));
                }
                self.accounts.insert(id.clone(), account);
                Ok(())
            }
            (AccountKey::GuestChallenge(id), AccountValue::GuestChallenge(challenge)) => {
                self.challenge_expiry.insert((challenge.expires_at_ms, *id));
                self.challenges.insert(*id, challenge);
                Ok(())
            }
            (AccountKey::Session(id), AccountValue::Session(session)) => {
                if session.replaced.len() > REMEMBERED_TOKENS {
                    return Err("session remembers too many tokens".to_owned());
                }
                self.session_expiry.insert((session.expires_at_ms, *id));
                self.sessions.insert(*id, session);
                Ok(())
            }
            (AccountKey::EmailClaim(key), AccountValue::EmailClaim(claim)) => {
                self.claims.insert(*key, claim);
                Ok(())
            }
            (key, _) => Err(format!("the record under {key:?} is of another kind")),
        }
    }

    pub fn check_invariants(&self, now: Millis) -> Result<(), String> {
        if self.emails.len() + self.guest_emails.len() != self.accounts.len() {
            return Err("e-mail indexes and accounts differ in size".to_owned());
        }
        for (id, account) in &self.accounts {
            let index = if account.role == Role::Guest {
                &self.guest_emails
            } else {
                &self.emails
            };
            if index.get(&account.email) != Some(id) {
                return Err(format!("account {id} is not indexed by its e-mail"));
            }
        }
        if self.challenge_expiry.len() != self.challenges.len() {
            return Err("challenge expiry index and challenges differ in size".to_owned());
        }
        for (id, challenge) in &self.challenges {
            if !self.challenge_expiry.contains(&(challenge.expires_at_ms, *id))
                || challenge.expires_at_ms <= now
            {
                return Err(format!(
                    "guest challenge {id} is indexed wrongly or outlived its expiry"
                ));
            }
            if challenge.attempts_left == 0 {
                return Err(format!("guest challenge {id} has no tries left but was kept"));
            }
        }
        if self.session_expiry.len() != self.sessions.len() {
            return Err("session expiry index and sessions differ in size".to_owned());
        }
        for (id, session) in &self.sessions {
            if !self.session_expiry.contains(&(session.expires_at_ms, *id)) {
                return Err(format!("session {id} is indexed at the wrong expiry"));
            }
            if session.expires_at_ms <= now {
                return Err(format!("session {id} outlived its expiry"));
            }
            if !self.accounts.contains_key(&session.customer_id) {
                return Err(format!("session {id} belongs to a missing account"));
            }
        }
        Ok(())
    }
}

fn check_ttl(ttl_ms: u64) -> Result<(), Rejection> {
    if ttl_ms == 0 || ttl_ms > MAX_SESSION_TTL_MS {
        return Err(Rejection::InvalidRequest(format!(
            "session ttl must be 1..={MAX_SESSION_TTL_MS} ms"
        )));
    }
    Ok(())
}

fn grant(session_id: u64, account: &AccountRecord, session: &SessionRecord) -> SessionGrant {
    SessionGrant {
        session_id,
        customer_id: session.customer_id.clone(),
        role: account.role,
        region: account.region.clone(),
        generation: session.generation,
        expires_at_ms: session.expires_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> NewAccount {
        NewAccount {
            email: "alice@example.org".to_owned(),
            name: "Alice".to_owned(),
            region: crate::RegionId::new("eu-west").unwrap(),
            role: Role::Customer,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        }
    }

    fn id(s: &str) -> CustomerId {
        CustomerId::new(s).unwrap()
    }

    #[test]
    fn one_account_per_email() {
        let mut accounts = Accounts::default();
        let mut dirty = BTreeSet::new();
        assert!(accounts.register(1, &mut dirty, &id("u.1.a"), &alice()).is_ok());
        assert_eq!(
            accounts.register(2, &mut dirty, &id("u.1.b"), &alice()),
            Err(Rejection::EmailTaken)
        );
        let mut other = alice();
        other.email = "bob@example.org".to_owned();
        assert_eq!(
            accounts.register(2, &mut dirty, &id("u.1.a"), &other),
            Err(Rejection::AccountExists)
        );
        other.email = "Bob@example.org".to_owned();
        assert!(matches!(
            accounts.register(2, &mut dirty, &id("u.1.c"), &other),
            Err(Rejection::InvalidRequest(_))
        ));
        assert_eq!(accounts.check_invariants(2), Ok(()));
    }

    #[test]
    fn rotation_detects_a_replayed_token_and_revokes_the_family() {
        let mut accounts = Accounts::default();
        let mut dirty = BTreeSet::new();
        accounts.register(1, &mut dirty, &id("u.1.a"), &alice()).unwrap();
        let started = accounts.start_session(1, 5, &mut dirty, &id("u.1.a"), [1; 32], 1_000);
        assert!(matches!(started, Ok(AccountSuccess::SessionStarted(ref g)) if g.session_id == 5));
        // The current token rotates.
        let rotated = accounts.rotate_session(10, &mut dirty, 5, &[1; 32], [2; 32], 1_000);
        assert!(
            matches!(rotated, Ok(AccountSuccess::SessionRotated(ref g)) if g.generation == 1 && g.expires_at_ms == 1_010)
        );
        // A stranger's guess changes nothing.
        assert_eq!(
            accounts.rotate_session(11, &mut dirty, 5, &[9; 32], [3; 32], 1_000),
            Err(Rejection::SessionInvalid)
        );
        // The old token again: the family dies, including the current token.
        assert_eq!(
            accounts.rotate_session(12, &mut dirty, 5, &[1; 32], [3; 32], 1_000),
            Ok(AccountSuccess::SessionRevoked { session_id: 5 })
        );
        assert_eq!(
            accounts.rotate_session(13, &mut dirty, 5, &[2; 32], [3; 32], 1_000),
            Err(Rejection::SessionInvalid)
        );
        assert_eq!(accounts.check_invariants(13), Ok(()));
    }

    #[test]
    fn logout_ends_the_session_and_expiry_deletes_it() {
        let mut accounts = Accounts::default();
        let mut dirty = BTreeSet::new();
        accounts.register(1, &mut dirty, &id("u.1.a"), &alice()).unwrap();
        accounts
            .start_session(1, 2, &mut dirty, &id("u.1.a"), [1; 32], 100)
            .unwrap();
        assert_eq!(
            accounts.end_session(&mut dirty, 2, &[7; 32]),
            Err(Rejection::SessionInvalid)
        );
        assert_eq!(
            accounts.end_session(&mut dirty, 2, &[1; 32]),
            Ok(AccountSuccess::SessionEnded { session_id: 2 })
        );
        assert_eq!(
            accounts.rotate_session(5, &mut dirty, 2, &[1; 32], [3; 32], 100),
            Err(Rejection::SessionInvalid)
        );
        accounts.expire_sessions(101, &mut dirty);
        assert!(accounts.sessions.is_empty());
        assert_eq!(accounts.check_invariants(101), Ok(()));
    }

    fn check(customer_id: CustomerId, email: &str, code_hash: TokenHash, ttl_ms: u64) -> NewGuestCheck {
        NewGuestCheck {
            customer_id,
            email: email.to_owned(),
            region: crate::RegionId::new("eu").unwrap(),
            code_hash,
            ttl_ms,
        }
    }

    #[test]
    fn a_guest_proves_the_address_once_and_keeps_one_identity() {
        let mut accounts = Accounts::default();
        let mut dirty = BTreeSet::new();
        let started = accounts.start_guest_check(
            1,
            7,
            &mut dirty,
            &check(id("g.1.x"), "gus@example.org", [5; 32], 100),
        );
        assert_eq!(
            started,
            Ok(AccountSuccess::GuestChallenge {
                challenge_id: 7,
                expires_at_ms: 101
            })
        );
        // Wrong codes use up tries; the fifth one voids the challenge.
        for left in (1..GUEST_CODE_ATTEMPTS).rev() {
            assert_eq!(
                accounts.verify_guest(2, &mut dirty, 7, &[0; 32]),
                Ok(AccountSuccess::GuestCodeWrong { attempts_left: left })
            );
        }
        assert_eq!(
            accounts.verify_guest(2, &mut dirty, 7, &[0; 32]),
            Ok(AccountSuccess::GuestCodeWrong { attempts_left: 0 })
        );
        assert_eq!(
            accounts.verify_guest(2, &mut dirty, 7, &[5; 32]),
            Err(Rejection::CodeInvalid)
        );
        assert_eq!(accounts.check_invariants(2), Ok(()));
        // A fresh code, entered right, makes the guest identity.
        accounts
            .start_guest_check(
                3,
                8,
                &mut dirty,
                &check(id("g.1.x"), "gus@example.org", [6; 32], 100),
            )
            .unwrap();
        let Ok(AccountSuccess::GuestVerified(view)) = accounts.verify_guest(4, &mut dirty, 8, &[6; 32])
        else {
            panic!("the right code was refused");
        };
        assert_eq!((view.customer_id.as_str(), view.role), ("g.1.x", Role::Guest));
        // The code is spent; a later check of the same address keeps the identity.
        assert_eq!(
            accounts.verify_guest(4, &mut dirty, 8, &[6; 32]),
            Err(Rejection::CodeInvalid)
        );
        accounts
            .start_guest_check(
                5,
                9,
                &mut dirty,
                &check(id("g.1.other"), "gus@example.org", [1; 32], 100),
            )
            .unwrap();
        let again = accounts.verify_guest(6, &mut dirty, 9, &[1; 32]);
        assert!(
            matches!(again, Ok(AccountSuccess::GuestVerified(ref v)) if v.customer_id.as_str() == "g.1.x")
        );
        // An expired challenge is invalid, and expiry deletes it.
        accounts
            .start_guest_check(
                7,
                10,
                &mut dirty,
                &check(id("g.1.x"), "gus@example.org", [2; 32], 10),
            )
            .unwrap();
        assert_eq!(
            accounts.verify_guest(17, &mut dirty, 10, &[2; 32]),
            Err(Rejection::CodeInvalid)
        );
        accounts.expire_sessions(17, &mut dirty);
        assert!(accounts.challenges.is_empty());
        // A guest has no password session and no role to change; the address
        // may still register an account of its own.
        assert_eq!(
            accounts.start_session(18, 11, &mut dirty, &id("g.1.x"), [1; 32], 100),
            Err(Rejection::UnknownAccount)
        );
        assert!(accounts.set_role(&mut dirty, &id("g.1.x"), Role::Admin).is_err());
        let mut gus = alice();
        gus.email = "gus@example.org".to_owned();
        assert!(accounts.register(18, &mut dirty, &id("u.1.gus"), &gus).is_ok());
        assert_eq!(accounts.check_invariants(18), Ok(()));
        let mut reloaded = Accounts::default();
        let mut records = Vec::new();
        accounts.append_records(&mut records);
        for (key, record) in records {
            reloaded.load(&key, record).unwrap();
        }
        assert_eq!(reloaded.check_invariants(18), Ok(()));
        assert_eq!(reloaded.guest_emails, accounts.guest_emails);
    }

    #[test]
    fn emails_are_checked() {
        assert!(check_email("a@b.co").is_ok());
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.de", "A@b.co", "a@.b.co",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
