//! Putting the configured region table into the cluster map.
//!
//! The map is what every node reads a region's currency, language and zone
//! from, so that all of them show the same thing; the node config's
//! `[[regions]]` only seeds it. Once the map exists, each node adds the
//! regions it knows that the map does not describe yet, and stops. It never
//! overwrites a description that is there: an operator's later
//! `PUT /v1/admin/regions/{id}` outlives restarts with an older config file,
//! and two nodes whose files disagree do not fight over the entry.

use std::sync::Arc;
use std::time::Duration;

use booking::{Command, MapCommand, MapSuccess, RegionId, RegionInfo, RequestId, Success};
use router::Router;
use tokio_util::sync::CancellationToken;

use crate::periodic::Periodic;

const RETRY: Duration = Duration::from_millis(500);

pub async fn seed(router: Arc<Router>, table: Vec<(RegionId, RegionInfo)>, shutdown: CancellationToken) {
    if table.is_empty() {
        return;
    }
    let mut clock = Periodic::new(RETRY, &shutdown);
    while clock.next().await {
        let Some(missing) = router.with_local_map(|map| {
            map.is_initialised().then(|| {
                table
                    .iter()
                    .filter(|(region, _)| !map.regions.contains_key(region))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        }) else {
            continue;
        };
        let Some(missing) = missing else { continue };
        if missing.is_empty() {
            return;
        }
        for (region, info) in missing {
            // Describing a region twice with the same entry changes nothing,
            // so each attempt may carry a fresh key.
            let id = RequestId::new(&format!("region/{region}/{}", uuid::Uuid::new_v4()))
                .expect("a valid request id");
            match router
                .submit(
                    id,
                    Command::Map(MapCommand::SetRegion {
                        region: region.clone(),
                        info,
                    }),
                )
                .await
            {
                Ok(Ok(Success::Map(MapSuccess::Changed { epoch }))) => {
                    tracing::info!(%region, epoch, "region described in the cluster map")
                }
                Ok(other) => {
                    // The config was validated at start-up, so this is a bug
                    // or a newer map format; retrying would not help.
                    tracing::error!(%region, ?other, "the region table entry was refused");
                    return;
                }
                Err(e) => tracing::debug!(%region, error = %e, "region not described yet; retrying"),
            }
        }
    }
}
