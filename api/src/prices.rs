//! Prices shown in the currency a client asked for (`?currency=JPY`).
//!
//! A converted price is for showing only: what a card is charged is always
//! the event's own price in its own currency, and every answer keeps that
//! `price`/`total` beside the `display_price`/`display_total`. Rates come
//! from this node's own replica of the catalog (the metadata group), so
//! converting costs no network hop; how they are stored and rounded is
//! `booking::fx`. A currency with no rate from the event's is a clear
//! `fx_rate_missing`, never a zero.
//!
//! A request that names no currency is shown prices in the currency of the
//! region whose node answers it (its entry in the region table), where a
//! rate allows: without one the display price is left out, not refused,
//! since the client asked for nothing; nor is a price repeated that is
//! already in that currency.

use booking::{CatalogAnswer, CatalogQuery, Currency, FxRate, Query, QueryResult};

use crate::{AppState, Problem, dto};

/// The target currency of a request and the rates to reach it.
pub(crate) struct Display {
    target: Currency,
    rates: Vec<FxRate>,
    /// The client named the currency: a missing rate is an error, not an
    /// omission.
    asked: bool,
}

impl Display {
    /// The display currency of a request: the one it asked for, else its
    /// region's (`None`: neither).
    pub(crate) async fn asked(state: &AppState, currency: Option<&str>) -> Result<Option<Display>, Problem> {
        let (target, asked) = match currency {
            Some(code) => {
                let target =
                    Currency::new(code).map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
                if target.minor_units().is_none() {
                    return Err(Problem::invalid_field(
                        "currency",
                        format!("{target} is not an ISO 4217 currency that prices can be shown in"),
                    ));
                }
                (target, true)
            }
            None => match crate::regions::local_currency(state) {
                Some(target) => (target, false),
                None => return Ok(None),
            },
        };
        let rates = match state
            .router
            .query_local(Query::Catalog(CatalogQuery::FxRates))
            .await?
        {
            QueryResult::Catalog(CatalogAnswer::FxRates(rates)) => rates,
            _ => Vec::new(),
        };
        Ok(Some(Display { target, rates, asked }))
    }

    /// `money` in the display currency; `None` when no rate reaches it and
    /// the client did not ask for this currency.
    pub(crate) fn price(&self, money: dto::Money) -> Result<Option<dto::DisplayPrice>, Problem> {
        if !self.asked && money.currency == self.target {
            // Unasked, a price already in the region's currency is shown once.
            return Ok(None);
        }
        match booking::fx::convert(money.into(), self.target, &self.rates) {
            Ok(price) => Ok(Some(price.into())),
            Err(_) if !self.asked => Ok(None),
            Err(rejection) => Err(rejection.into()),
        }
    }

    pub(crate) fn event(&self, event: &mut dto::Event) -> Result<(), Problem> {
        for tier in &mut event.tiers {
            tier.display_price = self.price(tier.price)?;
        }
        Ok(())
    }

    pub(crate) fn listing(&self, listing: &mut dto::Listing) -> Result<(), Problem> {
        listing.display_price_from = match listing.price_from {
            Some(price) => self.price(price)?,
            None => None,
        };
        Ok(())
    }

    pub(crate) fn hold(&self, hold: &mut dto::Hold) -> Result<(), Problem> {
        hold.display_total = self.price(hold.total)?;
        Ok(())
    }

    pub(crate) fn order(&self, order: &mut dto::Order) -> Result<(), Problem> {
        order.display_total = self.price(order.total)?;
        Ok(())
    }
}

/// An event's cheapest price from this node's replica of its group (`None`:
/// no replica here, or no such event). Tier prices never change once an
/// event exists, so any replica's copy is exact, however far behind.
pub(crate) fn lowest_price(state: &AppState, event_id: booking::EventId) -> Option<dto::Money> {
    let group = state
        .router
        .with_local_map(|map| map.placements.get(&event_id).copied())
        .flatten()?;
    let replica = state.router.groups().get(group)?;
    let price = replica.state.read().lowest_price(event_id)?;
    Some(price.into())
}
