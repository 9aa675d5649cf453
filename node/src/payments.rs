//! The payment worker: on every group this node leads, payments that are
//! still waiting are pushed along.
//!
//! - A payment `pending` for longer than `retry_after` is looked up at the
//!   provider: a decided charge is settled from the provider's record (its
//!   webhook was lost, or claimed something the provider did not confirm);
//!   one the provider does not know is asked for again (the node that took
//!   the checkout may have died before asking). Providers are idempotent by
//!   reference, so this never charges twice.
//! - A payment `refund_pending` (authorised after its hold ended, or its
//!   order or event cancelled) is refunded at the provider, then recorded as
//!   `refunded` under a request id derived from its reference.
//!
//! Only the leader works, so a leader change hands the work over with the
//! state; a refund asked twice across a hand-over is still one refund.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::payments::{ChargeStatus, Payments};
use booking::{Command, EventCommand, META_GROUP, PaymentOutcome, PaymentStatus, PaymentView, RequestId};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use router::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use transport::replicas::Groups;

use crate::periodic::Periodic;

const INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(
    groups: Groups,
    router: Arc<Router>,
    payments: Payments,
    retry_after: Duration,
    shutdown: CancellationToken,
) {
    let mut clock = Periodic::new(INTERVAL, &shutdown);
    // When this node last asked the provider about a pending payment.
    let mut asked: HashMap<String, Instant> = HashMap::new();
    while clock.next().await {
        for (group, payment) in open_payments(&groups) {
            match payment.status {
                PaymentStatus::Pending => {
                    let now_ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    let old_enough =
                        now_ms.saturating_sub(payment.created_at_ms) >= retry_after.as_millis() as u64;
                    let not_lately = asked
                        .get(&payment.reference)
                        .is_none_or(|at| at.elapsed() >= retry_after);
                    if old_enough && not_lately {
                        asked.insert(payment.reference.clone(), Instant::now());
                        reconcile(&router, &payments, &payment).await;
                    }
                }
                PaymentStatus::RefundPending => refund(&router, &payments, group, &payment).await,
                _ => {}
            }
        }
        // Forget payments that are no longer pending here.
        asked.retain(|_, at| at.elapsed() < retry_after * 10);
    }
}

/// A payment pending too long: the provider's own record decides. A decided
/// charge is settled from it (its webhook was lost, or never trusted); an
/// unknown one is asked for again (the node that took the checkout may have
/// died before asking).
async fn reconcile(router: &Router, payments: &Payments, payment: &PaymentView) {
    let outcome = match payments.provider.status(&payment.reference).await {
        Ok(ChargeStatus::Authorised) => PaymentOutcome::Authorised,
        Ok(ChargeStatus::Declined { reason }) => PaymentOutcome::Declined { reason },
        Ok(ChargeStatus::Pending) => return,
        Ok(ChargeStatus::NotFound) => {
            tracing::info!(reference = %payment.reference, "payment still pending: asking the provider again");
            if let Err(e) = payments.authorise(payment).await {
                tracing::warn!(reference = %payment.reference, error = %e, "authorisation retry failed");
            }
            return;
        }
        Err(e) => {
            tracing::warn!(reference = %payment.reference, error = %e, "cannot ask the provider; retrying later");
            return;
        }
    };
    match api::payments::settle_with(router, payment.event_id, payment.payment_id, outcome).await {
        Ok(Ok(_)) => {
            tracing::info!(reference = %payment.reference, "payment settled from the provider's record")
        }
        Ok(Err(rejection)) => {
            tracing::warn!(reference = %payment.reference, %rejection, "settlement refused")
        }
        Err(e) => tracing::warn!(reference = %payment.reference, error = %e, "settlement not recorded yet"),
    }
}

async fn refund(router: &Router, payments: &Payments, group: u64, payment: &PaymentView) {
    if let Err(e) = payments.provider.refund(&payment.reference, payment.amount).await {
        tracing::warn!(reference = %payment.reference, error = %e, "refund failed; retrying later");
        return;
    }
    let Ok(id) = RequestId::new(&format!("refund/{}", payment.reference)) else {
        return;
    };
    let command = Command::Event(
        payment.event_id,
        EventCommand::RefundSettled {
            payment_id: payment.payment_id,
        },
    );
    match router.submit_to_group(group, id, command).await {
        Ok(Ok(_)) => tracing::info!(reference = %payment.reference, amount = %payment.amount, "refunded"),
        Ok(Err(rejection)) => {
            tracing::warn!(reference = %payment.reference, %rejection, "refund not recorded")
        }
        Err(e) => tracing::warn!(reference = %payment.reference, error = %e, "refund not recorded yet"),
    }
}

/// The open payments of every data group this node leads.
fn open_payments(groups: &Groups) -> Vec<(u64, PaymentView)> {
    let mut out = Vec::new();
    for replica in groups.list() {
        if replica.group_id == META_GROUP {
            continue;
        }
        let leads = replica.raft.metrics().borrow_watched().state == ServerState::Leader;
        if !leads {
            continue;
        }
        let open = replica.state.read().open_payments();
        out.extend(open.into_iter().map(|p| (replica.group_id, p)));
    }
    out
}
