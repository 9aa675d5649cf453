//! Signed ticket payloads and their QR codes.
//!
//! A ticket's QR code carries `BX1.{event_id}.{code}.{signature}`, where the
//! signature is Ed25519 over `BX1.{event_id}.{code}` (base64url, no padding).
//! A scanner with the published public key (`GET /v1/tickets/public-key`)
//! can reject a forged or altered ticket offline; admitting it still goes
//! through the event's Raft group, so a ticket is admitted once.
//!
//! The code itself is already unguessable (the state machine derives it with
//! a secret salt); the signature adds offline verification and binds the
//! code to its event.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use booking::{Command, EventAnswer, EventCommand, EventId, EventQuery, Query, QueryResult, TicketCode};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Deserialize;
use serde_json::json;

use crate::{
    ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Caller, Problem, ReadOptions, dto, event_id, read,
    require_caller, submit,
};

const PREFIX: &str = "BX1";

pub struct TicketSigner {
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketSigner")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl TicketSigner {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let verifying = signing.verifying_key();
        TicketSigner { signing, verifying }
    }

    /// The public key, base64url without padding (32 bytes raw).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.verifying.as_bytes())
    }

    /// The QR payload of a ticket.
    pub fn payload(&self, event_id: EventId, code: &TicketCode) -> String {
        let message = format!("{PREFIX}.{}.{}", event_id.0, code.as_str());
        let signature = self.signing.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// Checks a scanned payload and returns what it names.
    pub fn verify(&self, payload: &str) -> Result<(EventId, TicketCode), Problem> {
        let bad = |why: &str| {
            Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_ticket_signature",
                format!("the ticket payload is not genuine: {why}"),
            )
        };
        let (message, signature) = payload.rsplit_once('.').ok_or_else(|| bad("no signature"))?;
        let mut parts = message.splitn(3, '.');
        let (Some(PREFIX), Some(event), Some(code)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not a BX1 payload"));
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or_else(|| bad("the signature is not 64 base64url bytes"))?;
        self.verifying
            .verify(message.as_bytes(), &signature)
            .map_err(|_| bad("the signature does not match"))?;
        let event_id = event.parse().map(EventId).map_err(|_| bad("bad event id"))?;
        let code = TicketCode::new(code).map_err(|_| bad("bad ticket code"))?;
        Ok((event_id, code))
    }
}

/// The payload as an SVG QR code (error correction M: survives a scuffed phone screen).
pub fn qr_svg(payload: &str) -> Result<String, Problem> {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| Problem::invalid(format!("cannot encode the QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

fn ticket_code(raw: &str) -> Result<TicketCode, Problem> {
    TicketCode::new(raw).map_err(|e| Problem::invalid(format!("ticket code: {e}")))
}

/// A ticket the caller may see: theirs (through its order) or any, for staff.
async fn visible_ticket(
    state: &AppState,
    caller: &Caller,
    options: &ReadOptions,
    event_id: EventId,
    code: TicketCode,
) -> Result<booking::TicketView, Problem> {
    require_caller(caller)?;
    let missing = || Problem::not_found("unknown_ticket", "no such ticket");
    let QueryResult::Event(EventAnswer::Ticket(Some(ticket))) =
        read(state, options, Query::Event(event_id, EventQuery::Ticket(code))).await?
    else {
        return Err(missing());
    };
    if caller.is_staff() {
        return Ok(ticket);
    }
    match read(
        state,
        options,
        Query::Event(event_id, EventQuery::Order(ticket.order_id)),
    )
    .await?
    {
        QueryResult::Event(EventAnswer::Order(Some(order))) if caller.may_see(&order.holder) => Ok(ticket),
        _ => Err(missing()),
    }
}

pub(crate) async fn get_ticket(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<ReadOptions>,
) -> ApiResult {
    let event_id = event_id(&raw_event)?;
    let ticket = visible_ticket(&state, &caller, &options, event_id, ticket_code(&raw_code)?).await?;
    let qr_payload = state
        .tickets
        .as_deref()
        .map(|signer| signer.payload(event_id, &ticket.code));
    let zone = crate::venue_zone(&state, event_id);
    let ticket = dto::Ticket {
        qr_payload,
        ..crate::in_zone(dto::Ticket::from(ticket), zone.as_deref())
    };
    Ok(Json(ticket).into_response())
}

/// The ticket's QR code as an SVG image.
pub(crate) async fn get_ticket_qr(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
) -> ApiResult {
    let signer = signer(&state)?;
    let event_id = event_id(&raw_event)?;
    let options = ReadOptions::default();
    let ticket = visible_ticket(&state, &caller, &options, event_id, ticket_code(&raw_code)?).await?;
    let svg = qr_svg(&signer.payload(event_id, &ticket.code))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

fn signer(state: &AppState) -> Result<&TicketSigner, Problem> {
    state.tickets.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_disabled",
            "this node has no [auth] configured, so tickets are not signed",
        )
    })
}

pub(crate) async fn ticket_public_key(State(state): State<AppState>) -> ApiResult {
    let signer = signer(&state)?;
    Ok(Json(json!({
        "alg": "Ed25519",
        "public_key": signer.public_key(),
        "encoding": "base64url, no padding, 32 bytes",
        "payload_format": "BX1.{event_id}.{code}.{signature over 'BX1.{event_id}.{code}'}",
    }))
    .into_response())
}

pub(crate) async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((raw_event, raw_code)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require_staff()?;
    let command = Command::Event(
        event_id(&raw_event)?,
        EventCommand::CheckIn {
            code: ticket_code(&raw_code)?,
        },
    );
    submit(&state, &caller, &headers, command).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScanBody {
    payload: String,
}

/// Check-in from a scanned QR payload: the signature is checked first, so a
/// forged code never reaches the event's group.
pub(crate) async fn check_in_scanned(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ScanBody>,
) -> ApiResult {
    caller.require_staff()?;
    let (event_id, code) = signer(&state)?.verify(&body.payload)?;
    submit(
        &state,
        &caller,
        &headers,
        Command::Event(event_id, EventCommand::CheckIn { code }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_verify_and_forgeries_do_not() {
        let signer = TicketSigner::from_seed(&[7; 32]);
        let code = TicketCode::new("12-ABCDEFGHJK").unwrap();
        let payload = signer.payload(EventId(12), &code);
        assert_eq!(signer.verify(&payload).unwrap(), (EventId(12), code));

        // Another event, another key, a truncated signature: all refused.
        let moved = payload.replacen("BX1.12.", "BX1.13.", 1);
        assert_eq!(
            signer.verify(&moved).unwrap_err().code,
            "invalid_ticket_signature"
        );
        let other = TicketSigner::from_seed(&[8; 32]);
        assert!(other.verify(&payload).is_err());
        assert!(signer.verify(&payload[..payload.len() - 3]).is_err());
        assert!(signer.verify("garbage").is_err());
    }

    #[test]
    fn qr_codes_render_as_svg() {
        let svg = qr_svg("BX1.1.ABC.sig").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    }
}
