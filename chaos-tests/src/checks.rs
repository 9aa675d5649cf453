//! One checker per invariant the chaos tests assert, each returning an error that says
//! which order or seat broke it.
//!
//! The checkers compare what clients were told (the acknowledged confirms they recorded)
//! with what the cluster stores. They only read; none of them retries a write.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure};
use region_config::NodeId;
use serde_json::Value;

use crate::client::{ApiClient, Consistency, EventView, WireId, expect_ok};
use crate::eventually;

/// A confirm a client saw acknowledged: the order and what it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedOrder {
    pub order_id: WireId,
    pub holder: String,
    /// Sorted seat ids.
    pub seats: Vec<String>,
}

/// No seat appears in two acknowledged orders.
pub fn no_seat_in_two_orders(orders: &[ConfirmedOrder]) -> anyhow::Result<()> {
    let mut owner: BTreeMap<&str, &WireId> = BTreeMap::new();
    for order in orders {
        for seat in &order.seats {
            if let Some(first) = owner.insert(seat, &order.order_id) {
                bail!("seat {seat} is in order {first} and in order {}", order.order_id);
            }
        }
    }
    Ok(())
}

/// Every acknowledged order is stored as confirmed, for the same holder and seats.
pub async fn orders_still_confirmed(
    client: &ApiClient,
    node: NodeId,
    event_id: u64,
    orders: &[ConfirmedOrder],
) -> anyhow::Result<()> {
    for order in orders {
        let stored = client
            .get_order(node, event_id, &order.order_id, Consistency::Linearizable)
            .await?;
        let stored = expect_ok(stored, &format!("reading acknowledged order {}", order.order_id))?;
        ensure!(
            stored.status == "confirmed",
            "acknowledged order {} is {}",
            order.order_id,
            stored.status
        );
        ensure!(
            stored.holder == order.holder,
            "order {} belongs to {} instead of {}",
            order.order_id,
            stored.holder,
            order.holder
        );
        ensure!(
            stored.seats() == order.seats,
            "order {} holds {:?} instead of {:?}",
            order.order_id,
            stored.seats(),
            order.seats
        );
    }
    Ok(())
}

/// The event's sold count and its sold seats are exactly the acknowledged orders' seats.
pub fn sold_seats_match_orders(view: &EventView, orders: &[ConfirmedOrder]) -> anyhow::Result<()> {
    let mut expected: Vec<String> = orders.iter().flat_map(|o| o.seats.iter().cloned()).collect();
    expected.sort();
    let mut sold = view.seat_ids_with_status("sold");
    sold.sort();
    ensure!(
        view.sold == expected.len() as u64,
        "event {} counts {} sold seats, clients hold {} confirmed seats",
        view.event_id,
        view.sold,
        expected.len()
    );
    if sold != expected {
        let missing: Vec<&String> = expected.iter().filter(|s| !sold.contains(s)).take(10).collect();
        let extra: Vec<&String> = sold.iter().filter(|s| !expected.contains(s)).take(10).collect();
        bail!(
            "sold seats differ from confirmed seats: not sold {missing:?}, sold without an order {extra:?}"
        );
    }
    Ok(())
}

/// Waits until node `node`'s own replica renders event `event_id` exactly as `expected`.
pub async fn local_view_converges(
    client: &ApiClient,
    node: NodeId,
    event_id: u64,
    expected: &Value,
    timeout: Duration,
) -> anyhow::Result<()> {
    eventually(
        &format!("node {node}'s local view of event {event_id}"),
        timeout,
        async || {
            let local = client.event_view_json(node, event_id, Consistency::Local).await?;
            match local {
                Ok(view) if view == *expected => Ok(Some(())),
                Ok(view) => Err(anyhow::anyhow!("differs: {}", first_difference(expected, &view))),
                Err(problem) => Err(anyhow::anyhow!("rejected: {problem}")),
            }
        },
    )
    .await
}

/// A short description of where two JSON documents first differ, for error messages.
/// A read without the fields derived from the answering node's clock (a
/// hold's `expires_in_ms` countdown), so that two reads of unchanged state
/// compare equal.
pub fn without_countdown(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.remove("expires_in_ms");
    }
    value
}

pub fn first_difference(expected: &Value, actual: &Value) -> String {
    fn walk(path: &str, expected: &Value, actual: &Value) -> Option<String> {
        match (expected, actual) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, value) in a {
                    let here = format!("{path}.{key}");
                    match b.get(key) {
                        Some(other) => {
                            if let Some(found) = walk(&here, value, other) {
                                return Some(found);
                            }
                        }
                        None => return Some(format!("{here} is missing")),
                    }
                }
                b.keys()
                    .find(|key| !a.contains_key(*key))
                    .map(|key| format!("{path}.{key} is unexpected"))
            }
            (Value::Array(a), Value::Array(b)) => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    if let Some(found) = walk(&format!("{path}[{i}]"), x, y) {
                        return Some(found);
                    }
                }
                (a.len() != b.len()).then(|| format!("{path} has {} items instead of {}", b.len(), a.len()))
            }
            (x, y) if x == y => None,
            (x, y) => Some(format!("{path} is {y} instead of {x}")),
        }
    }
    walk("$", expected, actual).unwrap_or_else(|| "no difference".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(id: u64, seats: &[&str]) -> ConfirmedOrder {
        let order_id = serde_json::from_value(json!(id)).unwrap();
        ConfirmedOrder {
            order_id,
            holder: "c1".to_owned(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_seat_in_two_orders_is_reported() {
        assert!(no_seat_in_two_orders(&[order(1, &["A-1-1"]), order(2, &["A-1-2"])]).is_ok());
        let err = no_seat_in_two_orders(&[order(1, &["A-1-1"]), order(2, &["A-1-1"])]).unwrap_err();
        assert!(err.to_string().contains("A-1-1"));
    }

    #[test]
    fn first_difference_points_at_the_field() {
        let a = json!({"sold": 3, "sections": [{"seats": ["sold", "held"]}]});
        let b = json!({"sold": 3, "sections": [{"seats": ["sold", "available"]}]});
        assert_eq!(
            first_difference(&a, &b),
            "$.sections[0].seats[1] is \"available\" instead of \"held\""
        );
        assert_eq!(first_difference(&a, &a), "no difference");
    }
}
