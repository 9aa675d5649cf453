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

use api::i18n::Lang;

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
        words: &Words,
    ) -> Result<Channel, Failure> {
        match channel {
            Channel::Email => match &self.smtp {
                Some((transport, from)) => {
                    let to = account
                        .email
                        .parse()
                        .map_err(|e| Failure::permanent(format!("the account's address is unusable: {e}")))?;
                    let (subject, body) = render_text(notice, event_name, words.lang, words.zone.as_deref());
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
                    log_notice(notice, event_name, words, "e-mail (no SMTP relay configured)");
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
                log_notice(notice, event_name, words, "log");
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
        lang: Lang,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let (subject, body) = guest_code_text(code, valid_for, lang);
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
                    // The message stays English and parseable for operators
                    // and scripts; the guest's own subject goes beside it.
                    tracing::info!(
                        target: "boxoffice::notices",
                        kind = "guest_code",
                        via = "e-mail (no SMTP relay configured)",
                        lang = lang.tag(),
                        subject,
                        "Your boxoffice code: {code}"
                    );
                    Ok(())
                }
            }
        })
    }
}

/// A guest code's e-mail subject and body in `lang`.
fn guest_code_text(code: &str, valid_for: Duration, lang: Lang) -> (String, String) {
    let minutes = valid_for.as_secs().div_ceil(60);
    match lang {
        Lang::En => (
            format!("Your boxoffice code: {code}"),
            format!(
                "Your code is {code}. Enter it to buy tickets as a guest; it is valid for {minutes} minutes.\r\n\r\n\
                 If you did not ask for it, ignore this message: nobody can use your address without it.\r\n"
            ),
        ),
        Lang::De => (
            format!("Ihr boxoffice-Code: {code}"),
            format!(
                "Ihr Code lautet {code}. Geben Sie ihn ein, um als Gast Tickets zu kaufen; er gilt {minutes} Minuten.\r\n\r\n\
                 Falls Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht: ohne den Code kann niemand \
                 Ihre Adresse verwenden.\r\n"
            ),
        ),
        Lang::Ja => (
            format!("boxoffice 確認コード: {code}"),
            format!(
                "確認コードは {code} です。ゲストとしてチケットを購入するには、このコードを入力してください（有効期間 {minutes} 分）。\r\n\r\n\
                 お心当たりのない場合は、このメールを無視してください。コードがなければ、あなたのアドレスは誰にも使えません。\r\n"
            ),
        ),
    }
}

/// How a notice is written for its recipient: the language of their home
/// region and the time zone of the event's venue.
struct Words {
    lang: Lang,
    zone: Option<String>,
}

impl Words {
    /// The recipient's home-region language (English when the region table
    /// has no locale we speak) and the venue's zone from this node's catalog.
    fn for_notice(router: &Router, account: &AccountView, event_id: EventId) -> Words {
        let lang = router
            .with_local_map(|map| {
                map.regions
                    .get(&account.region)
                    .and_then(|info| Lang::of_tag(&info.locale))
            })
            .flatten()
            .unwrap_or(Lang::En);
        let zone = router
            .groups()
            .get(META_GROUP)
            .and_then(|meta| meta.state.read().venue_zone(event_id));
        Words { lang, zone }
    }
}

fn log_notice(notice: &NoticeView, event_name: &str, words: &Words, via: &str) {
    let (subject, _) = render_text(notice, event_name, words.lang, words.zone.as_deref());
    tracing::info!(
        target: "boxoffice::notices",
        message_id = %notice.message_id(),
        recipient = %notice.recipient,
        kind = notice.kind.name(),
        via,
        "{subject}"
    );
}

/// `money` for people: whole units with the currency's real minor units,
/// spelled as `lang` writes numbers (`EUR 42.50`, `42,50 EUR`, `42.50 EUR`).
pub fn format_money(money: booking::Money, lang: Lang) -> String {
    let units = money.currency.minor_units().unwrap_or(2);
    let negative = money.amount_minor < 0;
    let magnitude = money.amount_minor.unsigned_abs();
    let scale = 10u64.pow(u32::from(units));
    let sign = if negative { "-" } else { "" };
    let separator = if lang == Lang::De { "," } else { "." };
    let number = if units == 0 {
        format!("{sign}{magnitude}")
    } else {
        format!(
            "{sign}{}{separator}{:0width$}",
            magnitude / scale,
            magnitude % scale,
            width = usize::from(units)
        )
    };
    match lang {
        Lang::En => format!("{} {number}", money.currency),
        Lang::De | Lang::Ja => format!("{number} {}", money.currency),
    }
}

/// The subject and plain-text body of a notice, in `lang`, with times in
/// RFC 3339 at the venue's time zone `zone` (UTC when the venue is unknown).
pub fn render_text(
    notice: &NoticeView,
    event_name: &str,
    lang: Lang,
    zone: Option<&str>,
) -> (String, String) {
    let time = |ms: u64| {
        zone.and_then(|z| api::dto::local_time(ms, z))
            .or_else(|| api::dto::local_time(ms, "UTC"))
            .unwrap_or_else(|| ms.to_string())
    };
    let id = notice.event_id;
    let (subject, detail) = match (&notice.kind, lang) {
        (
            NoticeKind::OrderConfirmed {
                order_id,
                total,
                tickets,
            },
            _,
        ) => {
            let total = format_money(*total, lang);
            match lang {
                Lang::En => (
                    format!("Order {order_id} confirmed: {event_name}"),
                    format!(
                        "Your order {order_id} for {event_name} (event {id}) is confirmed: {tickets} ticket(s), {total} in all."
                    ),
                ),
                Lang::De => (
                    format!("Bestellung {order_id} bestätigt: {event_name}"),
                    format!(
                        "Ihre Bestellung {order_id} für {event_name} (Veranstaltung {id}) ist bestätigt: {tickets} Ticket(s), insgesamt {total}."
                    ),
                ),
                Lang::Ja => (
                    format!("ご注文 {order_id} が確定しました: {event_name}"),
                    format!(
                        "{event_name}（イベント {id}）のご注文 {order_id} が確定しました。チケット {tickets} 枚、合計 {total} です。"
                    ),
                ),
            }
        }
        (NoticeKind::PaymentFailed { hold_id, reason }, Lang::En) => (
            format!("Payment failed: {event_name}"),
            format!(
                "The payment for hold {hold_id} of {event_name} (event {id}) failed: {reason}. The hold stays yours until it expires; you may try again."
            ),
        ),
        (NoticeKind::PaymentFailed { hold_id, reason }, Lang::De) => (
            format!("Zahlung fehlgeschlagen: {event_name}"),
            format!(
                "Die Zahlung für die Reservierung {hold_id} für {event_name} (Veranstaltung {id}) ist fehlgeschlagen ({reason}). Die Reservierung bleibt Ihnen bis zu ihrem Ablauf; Sie können es erneut versuchen."
            ),
        ),
        (NoticeKind::PaymentFailed { hold_id, reason }, Lang::Ja) => (
            format!("お支払いができませんでした: {event_name}"),
            format!(
                "{event_name}（イベント {id}）の仮押さえ {hold_id} のお支払いができませんでした（{reason}）。仮押さえは期限まで有効です。もう一度お試しください。"
            ),
        ),
        (
            NoticeKind::HoldExpiring {
                hold_id,
                expires_at_ms,
            },
            _,
        ) => {
            let at = time(*expires_at_ms);
            match lang {
                Lang::En => (
                    format!("Your hold for {event_name} is about to expire"),
                    format!(
                        "Hold {hold_id} for {event_name} (event {id}) expires at {at}. Check out before then to keep the seats."
                    ),
                ),
                Lang::De => (
                    format!("Ihre Reservierung für {event_name} läuft bald ab"),
                    format!(
                        "Die Reservierung {hold_id} für {event_name} (Veranstaltung {id}) läuft um {at} ab. Schließen Sie den Kauf vorher ab, um die Plätze zu behalten."
                    ),
                ),
                Lang::Ja => (
                    format!("{event_name} の仮押さえの期限が近づいています"),
                    format!(
                        "{event_name}（イベント {id}）の仮押さえ {hold_id} は {at} に期限切れになります。座席を確保するには、それまでに購入手続きを完了してください。"
                    ),
                ),
            }
        }
        (NoticeKind::EventReminder, Lang::En) => (
            format!("Reminder: {event_name}"),
            format!("This is your reminder for {event_name} (event {id})."),
        ),
        (NoticeKind::EventReminder, Lang::De) => (
            format!("Erinnerung: {event_name}"),
            format!("Dies ist Ihre Erinnerung an {event_name} (Veranstaltung {id})."),
        ),
        (NoticeKind::EventReminder, Lang::Ja) => (
            format!("リマインダー: {event_name}"),
            format!("{event_name}（イベント {id}）のリマインダーです。"),
        ),
        (NoticeKind::EventCancelled { order_id, refunded }, _) => {
            let subject = match lang {
                Lang::En => format!("Cancelled: {event_name}"),
                Lang::De => format!("Abgesagt: {event_name}"),
                Lang::Ja => format!("中止のお知らせ: {event_name}"),
            };
            let detail = match (lang, order_id, refunded) {
                (Lang::En, Some(order), true) => format!(
                    "{event_name} (event {id}) was cancelled. Order {order} is cancelled and refunded."
                ),
                (Lang::En, Some(order), false) => {
                    format!("{event_name} (event {id}) was cancelled. Order {order} is cancelled.")
                }
                (Lang::En, None, _) => format!("{event_name} (event {id}) was cancelled."),
                (Lang::De, Some(order), true) => format!(
                    "{event_name} (Veranstaltung {id}) wurde abgesagt. Die Bestellung {order} ist storniert und erstattet."
                ),
                (Lang::De, Some(order), false) => format!(
                    "{event_name} (Veranstaltung {id}) wurde abgesagt. Die Bestellung {order} ist storniert."
                ),
                (Lang::De, None, _) => format!("{event_name} (Veranstaltung {id}) wurde abgesagt."),
                (Lang::Ja, Some(order), true) => format!(
                    "{event_name}（イベント {id}）は中止になりました。ご注文 {order} はキャンセルされ、返金されました。"
                ),
                (Lang::Ja, Some(order), false) => format!(
                    "{event_name}（イベント {id}）は中止になりました。ご注文 {order} はキャンセルされました。"
                ),
                (Lang::Ja, None, _) => format!("{event_name}（イベント {id}）は中止になりました。"),
            };
            (subject, detail)
        }
        (
            NoticeKind::WaitlistOffer {
                hold_id,
                expires_at_ms,
                places,
            },
            _,
        ) => {
            let at = time(*expires_at_ms);
            match lang {
                Lang::En => (
                    format!("Places for {event_name} are yours to buy"),
                    format!(
                        "{places} place(s) for {event_name} (event {id}) freed up and are held for you as hold {hold_id} until {at}. Check out before then."
                    ),
                ),
                Lang::De => (
                    format!("Plätze für {event_name} sind für Sie reserviert"),
                    format!(
                        "{places} Platz/Plätze für {event_name} (Veranstaltung {id}) sind frei geworden und bis {at} als Reservierung {hold_id} für Sie zurückgelegt. Schließen Sie den Kauf vorher ab."
                    ),
                ),
                Lang::Ja => (
                    format!("{event_name} の座席をご購入いただけます"),
                    format!(
                        "{event_name}（イベント {id}）の座席 {places} 席が空き、仮押さえ {hold_id} として {at} まで確保されています。それまでに購入手続きを完了してください。"
                    ),
                ),
            }
        }
    };
    let footer = match lang {
        Lang::En => "Notification id",
        Lang::De => "Benachrichtigungs-ID",
        Lang::Ja => "通知ID",
    };
    let body = format!("{detail}\r\n\r\n{footer}: {}\r\n", notice.message_id());
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
            let words = Words::for_notice(router, &account, notice.event_id);
            channels
                .deliver(notice, &account, channel, event_name, &words)
                .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use booking::{Currency, CustomerId, Delivery, HoldId, Money, OrderId};

    #[test]
    fn guest_codes_are_written_in_the_requests_language() {
        let ttl = Duration::from_secs(600);
        let texts: Vec<(String, String)> = [Lang::En, Lang::De, Lang::Ja]
            .into_iter()
            .map(|lang| guest_code_text("482913", ttl, lang))
            .collect();
        for (subject, body) in &texts {
            assert!(subject.ends_with(": 482913"), "{subject}");
            assert!(body.contains("482913") && body.contains("10"), "{body}");
        }
        assert!(texts[0].1.starts_with("Your code is 482913."));
        assert!(texts[1].1.starts_with("Ihr Code lautet 482913."));
        assert!(texts[2].1.starts_with("確認コードは 482913 です。"));
    }

    fn notice(kind: NoticeKind) -> NoticeView {
        NoticeView {
            event_id: EventId(7),
            notice_id: NoticeId {
                log_index: 12,
                ordinal: 0,
            },
            recipient: CustomerId::new("c1").unwrap(),
            kind,
            channel: None,
            created_at_ms: 0,
            delivery: Delivery::Pending {
                attempts: 0,
                next_attempt_ms: 0,
                last_error: None,
            },
        }
    }

    #[test]
    fn money_is_written_in_whole_units_of_its_currency() {
        let eur = Money::new(4250, Currency::EUR);
        let jpy = Money::new(4250, Currency::new("JPY").unwrap());
        let kwd = Money::new(-1234, Currency::new("KWD").unwrap());
        assert_eq!(format_money(eur, Lang::En), "EUR 42.50");
        assert_eq!(format_money(eur, Lang::De), "42,50 EUR");
        assert_eq!(format_money(jpy, Lang::Ja), "4250 JPY");
        assert_eq!(format_money(kwd, Lang::En), "KWD -1.234");
    }

    #[test]
    fn a_notice_speaks_its_recipients_language_with_local_times() {
        let confirmed = notice(NoticeKind::OrderConfirmed {
            order_id: OrderId(3),
            total: Money::new(9000, Currency::EUR),
            tickets: 2,
        });
        let (subject, body) = render_text(&confirmed, "Gala", Lang::De, Some("Europe/Berlin"));
        assert_eq!(subject, "Bestellung 3 bestätigt: Gala");
        assert!(body.contains("insgesamt 90,00 EUR"), "{body}");
        assert!(
            body.contains("Benachrichtigungs-ID: notice.7.12.0@boxoffice"),
            "{body}"
        );
        let (subject, _) = render_text(&confirmed, "Gala", Lang::Ja, None);
        assert_eq!(subject, "ご注文 3 が確定しました: Gala");
        let (subject, _) = render_text(&confirmed, "Gala", Lang::En, None);
        assert_eq!(subject, "Order 3 confirmed: Gala");

        // 2026-07-01T18:00:00Z: 20:00 in Berlin in summer, 03:00 next day in Tokyo.
        let expiring = notice(NoticeKind::HoldExpiring {
            hold_id: HoldId(5),
            expires_at_ms: 1_782_928_800_000,
        });
        let (_, body) = render_text(&expiring, "Gala", Lang::De, Some("Europe/Berlin"));
        assert!(body.contains("um 2026-07-01T20:00:00+02:00 ab"), "{body}");
        let (_, body) = render_text(&expiring, "Gala", Lang::Ja, Some("Asia/Tokyo"));
        assert!(body.contains("2026-07-02T03:00:00+09:00 に期限切れ"), "{body}");
        let (_, body) = render_text(&expiring, "Gala", Lang::En, None);
        assert!(body.contains("expires at 2026-07-01T18:00:00+00:00"), "{body}");
    }
}
