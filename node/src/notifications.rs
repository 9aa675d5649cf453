//! The notification dispatcher: on every data group this node leads, the
//! outbox's due notices are delivered and the outcome recorded.
//!
//! - Each due notice is delivered through its channel: the notice's own (a
//!   reminder subscription names one) or the recipient account's preference.
//!   E-mail goes over SMTP when `[notifications.smtp]` is configured and to
//!   the log otherwise (the demo's default); webhooks are an HTTP POST signed
//!   like the payment webhooks (`Boxoffice-Signature`); the log channel
//!   writes one structured line.
//! - The outcome is proposed to the group (`NoticeDelivered`,
//!   `NoticeFailed`), so the whole group knows it: a new leader continues
//!   with what is still pending, with the backoff the state machine computed.
//! - Delivery is at least once. A leader that dies after sending and before
//!   recording leaves the notice pending, and its successor sends it again;
//!   every copy carries the same id (`Message-ID`, `Boxoffice-Notification-Id`)
//!   so receivers drop the duplicate.
//! - At most `CONCURRENCY` deliveries run at once, and a notice is never sent
//!   twice at the same time by one node.
//!
//! Personal data stays where it lives: the recipient's address is read from
//! their account group when the notice is sent, never copied into the
//! event's group.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use booking::{
    AccountAnswer, AccountQuery, AccountView, Channel, Command, EventCommand, EventId, META_GROUP, NoticeId,
    NoticeKind, NoticeView, RequestId,
};
use booking::{Query, QueryResult};
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use region_config::NotificationsConfig;
use router::Router;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use transport::replicas::Groups;

use crate::periodic::Periodic;

const INTERVAL: Duration = Duration::from_millis(250);
/// Deliveries in flight at once, over all groups.
const CONCURRENCY: usize = 16;
/// Due notices read per group per round.
const BATCH: usize = 64;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The ways out of the cluster.
#[derive(Clone)]
pub struct Channels {
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, lettre::message::Mailbox)>,
    webhook_secret: Option<Arc<[u8]>>,
    /// Webhooks: https to public addresses only, unless allowed (`api::outbound`).
    http: reqwest::Client,
    allow_private_webhooks: bool,
}

/// Why a delivery did not happen; `permanent` ones are not retried.
struct Failure {
    error: String,
    permanent: bool,
}

impl Failure {
    fn retry(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            permanent: false,
        }
    }

    fn permanent(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            permanent: true,
        }
    }
}

impl Channels {
    pub fn new(config: &NotificationsConfig) -> anyhow::Result<Channels> {
        let smtp = match &config.smtp {
            Some(smtp) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
                    .port(smtp.port)
                    .timeout(Some(SEND_TIMEOUT))
                    .build();
                let from = smtp
                    .from
                    .parse()
                    .map_err(|e| anyhow::anyhow!("notifications.smtp.from: {e}"))?;
                Some((transport, from))
            }
            None => None,
        };
        let http = api::outbound::webhook_client(config.allow_private_webhooks, SEND_TIMEOUT)?;
        Ok(Channels {
            smtp,
            webhook_secret: config.webhook_secret.as_ref().map(|s| Arc::from(s.as_bytes())),
            http,
            allow_private_webhooks: config.allow_private_webhooks,
        })
    }

    /// Delivers one notice to `account` through `channel`; the channel it
    /// actually went through.
    async fn deliver(
        &self,
        notice: &NoticeView,
        account: &AccountView,
        channel: Channel,
        event_name: &str,
    ) -> Result<Channel, Failure> {
        match channel {
            Channel::Email => match &self.smtp {
                Some((transport, from)) => {
                    let to = account
                        .email
                        .parse()
                        .map_err(|e| Failure::permanent(format!("the account's address is unusable: {e}")))?;
                    let (subject, body) = render_text(notice, event_name);
                    let message = Message::builder()
                        .from(from.clone())
                        .to(to)
                        .subject(subject)
                        .message_id(Some(format!("<{}>", notice.message_id())))
                        .header(ContentType::TEXT_PLAIN)
                        .body(body)
                        .map_err(|e| Failure::permanent(format!("cannot build the message: {e}")))?;
                    transport
                        .send(message)
                        .await
                        .map_err(|e| Failure::retry(format!("smtp: {e}")))?;
                    Ok(Channel::Email)
                }
                None => {
                    log_notice(notice, event_name, "e-mail (no SMTP relay configured)");
                    Ok(Channel::Log)
                }
            },
            Channel::Webhook => {
                let url = account
                    .notify
                    .webhook_url
                    .as_deref()
                    .ok_or_else(|| Failure::permanent("the account has no webhook_url"))?;
                // Checked when it was set; checked again because the rules
                // may have tightened since (and the resolver checks each
                // connection's addresses).
                if let Err(why) = api::outbound::check_webhook_url(url, self.allow_private_webhooks) {
                    tracing::warn!(message_id = %notice.message_id(), why, "webhook URL refused");
                    return Err(Failure::permanent("webhook: the URL is not allowed"));
                }
                let body = serde_json::json!({
                    "id": notice.message_id(),
                    "type": notice.kind.name(),
                    "event_id": notice.event_id,
                    "event_name": event_name,
                    "customer_id": notice.recipient,
                    "created_at_ms": notice.created_at_ms,
                    "data": api::dto::NoticeKind::from(notice.kind.clone()),
                })
                .to_string();
                let mut request = self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("boxoffice-notification-id", notice.message_id());
                if let Some(secret) = &self.webhook_secret {
                    let now_secs = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    request = request.header(
                        "boxoffice-signature",
                        api::payments::sign(secret, now_secs, body.as_bytes()),
                    );
                }
                let response = request.body(body).send().await.map_err(|e| {
                    // The customer sees a category; the detail (which address,
                    // what the far side said) stays in the node's log.
                    tracing::warn!(message_id = %notice.message_id(), error = %e, "webhook not delivered");
                    Failure::retry(api::outbound::delivery_error(&e))
                })?;
                let status = response.status();
                if status.is_success() {
                    Ok(Channel::Webhook)
                } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
                    Err(Failure::permanent(format!("webhook answered {status}")))
                } else {
                    Err(Failure::retry(format!("webhook answered {status}")))
                }
            }
            Channel::Log => {
                log_notice(notice, event_name, "log");
                Ok(Channel::Log)
            }
        }
    }
}

/// Guest codes go out by e-mail: over SMTP when a relay is configured, else
/// to the log (the demo's default, where a newcomer reads it).
impl api::CodeSender for Channels {
    fn send_code<'a>(
        &'a self,
        email: &'a str,
        code: &'a str,
        valid_for: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let minutes = valid_for.as_secs().div_ceil(60);
            let subject = format!("Your boxoffice code: {code}");
            let body = format!(
                "Your code is {code}. Enter it to buy tickets as a guest; it is valid for {minutes} minutes.\r\n\r\n\
                 If you did not ask for it, ignore this message: nobody can use your address without it.\r\n"
            );
            match &self.smtp {
                Some((transport, from)) => {
                    let to = email.parse().map_err(|e| format!("unusable address: {e}"))?;
                    let message = Message::builder()
                        .from(from.clone())
                        .to(to)
                        .subject(subject)
                        .header(ContentType::TEXT_PLAIN)
                        .body(body)
                        .map_err(|e| format!("cannot build the message: {e}"))?;
                    transport.send(message).await.map_err(|e| format!("smtp: {e}"))?;
                    Ok(())
                }
                None => {
                    // No relay: the demo's way of showing what would be mailed.
                    tracing::info!(target: "boxoffice::notices", kind = "guest_code", via = "e-mail (no SMTP relay configured)", "{subject}");
                    Ok(())
                }
            }
        })
    }
}

fn log_notice(notice: &NoticeView, event_name: &str, via: &str) {
    let (subject, _) = render_text(notice, event_name);
    tracing::info!(
        target: "boxoffice::notices",
        message_id = %notice.message_id(),
        recipient = %notice.recipient,
        kind = notice.kind.name(),
        via,
        "{subject}"
    );
}

/// The subject and plain-text body of a notice.
pub fn render_text(notice: &NoticeView, event_name: &str) -> (String, String) {
    let event = format!("{event_name} (event {})", notice.event_id);
    let (subject, detail) = match &notice.kind {
        NoticeKind::OrderConfirmed {
            order_id,
            total,
            tickets,
        } => (
            format!("Order {order_id} confirmed: {event_name}"),
            format!("Your order {order_id} for {event} is confirmed: {tickets} ticket(s), {total} in all."),
        ),
        NoticeKind::PaymentFailed { hold_id, reason } => (
            format!("Payment failed: {event_name}"),
            format!(
                "The payment for hold {hold_id} of {event} failed: {reason}. The hold stays yours until it expires; you may try again."
            ),
        ),
        NoticeKind::HoldExpiring {
            hold_id,
            expires_at_ms,
        } => (
            format!("Your hold for {event_name} is about to expire"),
            format!(
                "Hold {hold_id} for {event} expires at {expires_at_ms} (ms since the epoch). Check out before then to keep the seats."
            ),
        ),
        NoticeKind::EventReminder => (
            format!("Reminder: {event_name}"),
            format!("This is your reminder for {event}."),
        ),
        NoticeKind::EventCancelled { order_id, refunded } => (
            format!("Cancelled: {event_name}"),
            match (order_id, refunded) {
                (Some(order), true) => {
                    format!("{event} was cancelled. Order {order} is cancelled and refunded.")
                }
                (Some(order), false) => format!("{event} was cancelled. Order {order} is cancelled."),
                (None, _) => format!("{event} was cancelled."),
            },
        ),
        NoticeKind::WaitlistOffer {
            hold_id,
            expires_at_ms,
            places,
        } => (
            format!("Places for {event_name} are yours to buy"),
            format!(
                "{places} place(s) for {event} freed up and are held for you as hold {hold_id} until {expires_at_ms} (ms since the epoch). Check out before then."
            ),
        ),
    };
    let body = format!("{detail}\r\n\r\nNotification id: {}\r\n", notice.message_id());
    (subject, body)
}

/// Runs until `shutdown` is cancelled.
pub async fn run(groups: Groups, router: Arc<Router>, channels: Channels, shutdown: CancellationToken) {
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    let in_flight: Arc<Mutex<HashSet<(EventId, NoticeId)>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    while clock.next().await {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for replica in groups.list() {
            if replica.group_id == META_GROUP
                || replica.raft.metrics().borrow_watched().state != ServerState::Leader
            {
                continue;
            }
            let due = replica.state.read().due_notices(now_ms, BATCH);
            for notice in due {
                let key = (notice.event_id, notice.notice_id);
                if !in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
                    continue;
                }
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (router, channels, in_flight) = (router.clone(), channels.clone(), in_flight.clone());
                let group = replica.group_id;
                let event_name = replica
                    .state
                    .read()
                    .event_name(notice.event_id)
                    .unwrap_or_default();
                tokio::spawn(async move {
                    handle(&router, &channels, group, &notice, &event_name).await;
                    in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    drop(permit);
                });
            }
        }
    }
}

async fn handle(router: &Router, channels: &Channels, group: u64, notice: &NoticeView, event_name: &str) {
    // Only pending notices are due; their attempt count labels the outcome.
    let booking::Delivery::Pending { attempts, .. } = notice.delivery else {
        return;
    };
    let outcome = match router
        .query(Query::Account(AccountQuery::Account(notice.recipient.clone())))
        .await
    {
        Ok(QueryResult::Account(AccountAnswer::Account(Some(account)))) => {
            let channel = notice.channel.unwrap_or(account.notify.channel);
            channels.deliver(notice, &account, channel, event_name).await
        }
        Ok(_) => Err(Failure::permanent("the recipient has no account")),
        Err(e) => Err(Failure::retry(format!(
            "cannot read the recipient's account: {e}"
        ))),
    };
    let (label, command) = match outcome {
        Ok(channel) => (
            "delivered".to_owned(),
            Command::Event(
                notice.event_id,
                EventCommand::NoticeDelivered {
                    notice_id: notice.notice_id,
                    channel,
                },
            ),
        ),
        Err(failure) => {
            tracing::warn!(message_id = %notice.message_id(), error = %failure.error, permanent = failure.permanent, "notice not delivered");
            (
                format!("failed-{attempts}"),
                Command::Event(
                    notice.event_id,
                    EventCommand::NoticeFailed {
                        notice_id: notice.notice_id,
                        error: failure.error,
                        permanent: failure.permanent,
                    },
                ),
            )
        }
    };
    let Ok(request_id) = RequestId::new(&format!(
        "notice/{}/{}/{label}",
        notice.event_id, notice.notice_id
    )) else {
        return;
    };
    match router.submit_to_group(group, request_id, command).await {
        Ok(Ok(_)) => tracing::debug!(message_id = %notice.message_id(), "notice outcome recorded"),
        Ok(Err(rejection)) => {
            tracing::warn!(message_id = %notice.message_id(), %rejection, "notice outcome refused")
        }
        // The next leader finds the notice still pending and sends it again.
        Err(e) => {
            tracing::warn!(message_id = %notice.message_id(), error = %e, "notice outcome not recorded")
        }
    }
}
