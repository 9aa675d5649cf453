//! Prices shown in the currency a client asked for (`?currency=JPY`).
//!
//! A converted price is for showing only: what a card is charged is always
//! the event's own price in its own currency, and every answer keeps that
//! `price`/`total` beside the `display_price`/`display_total`. Rates come
//! from this node's own replica of the catalog (the metadata group), so
//! converting costs no network hop; how they are stored and rounded is
//! `booking::fx`. A currency with no rate from the event's is a clear
//! `fx_rate_missing`, never a zero.

use booking::{CatalogAnswer, CatalogQuery, Currency, FxRate, Query, QueryResult};

use crate::{AppState, Problem, dto};

/// The target currency of a request and the rates to reach it.
pub(crate) struct Display {
    target: Currency,
    rates: Vec<FxRate>,
}

impl Display {
    /// The display currency the request asked for (`None`: it asked for none).
    pub(crate) async fn asked(state: &AppState, currency: Option<&str>) -> Result<Option<Display>, Problem> {
        let Some(code) = currency else {
            return Ok(None);
        };
        let target = Currency::new(code).map_err(|e| Problem::invalid_field("currency", e.to_string()))?;
        if target.minor_units().is_none() {
            return Err(Problem::invalid_field(
                "currency",
                format!("{target} is not an ISO 4217 currency that prices can be shown in"),
            ));
        }
        let rates = match state
            .router
            .query_local(Query::Catalog(CatalogQuery::FxRates))
            .await?
        {
            QueryResult::Catalog(CatalogAnswer::FxRates(rates)) => rates,
            _ => Vec::new(),
        };
        Ok(Some(Display { target, rates }))
    }

    pub(crate) fn price(&self, money: dto::Money) -> Result<dto::DisplayPrice, Problem> {
        let find = |base: Currency, quote: Currency| {
            self.rates
                .iter()
                .find(|r| r.base == base && r.quote == quote)
                .cloned()
        };
        Ok(booking::fx::convert(money.into(), self.target, find)?.into())
    }

    pub(crate) fn event(&self, event: &mut dto::Event) -> Result<(), Problem> {
        for tier in &mut event.tiers {
            tier.display_price = Some(self.price(tier.price)?);
        }
        Ok(())
    }

    pub(crate) fn hold(&self, hold: &mut dto::Hold) -> Result<(), Problem> {
        hold.display_total = Some(self.price(hold.total)?);
        Ok(())
    }

    pub(crate) fn order(&self, order: &mut dto::Order) -> Result<(), Problem> {
        order.display_total = Some(self.price(order.total)?);
        Ok(())
    }
}
