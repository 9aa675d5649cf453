//! Payload encoding inside gRPC envelopes: a version byte, then postcard.

use serde::{Serialize, de::DeserializeOwned};

/// 2 since the booking vocabulary is nested by domain: a node of another
/// release refuses the payload instead of misreading it.
const WIRE_VERSION: u8 = 2;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION];
    out.extend_from_slice(&postcard::to_stdvec(value).expect("postcard serialisation into memory"));
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    match bytes.split_first() {
        Some((&WIRE_VERSION, body)) => postcard::from_bytes(body)
            .map_err(|e| tonic::Status::invalid_argument(format!("undecodable payload: {e}"))),
        Some((v, _)) => Err(tonic::Status::invalid_argument(format!(
            "unknown wire version {v}"
        ))),
        None => Err(tonic::Status::invalid_argument("empty payload")),
    }
}
