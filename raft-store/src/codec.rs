//! Value encoding for everything this crate persists.
//!
//! Every stored value starts with a one-byte format version followed by its
//! postcard encoding. A reader that meets an unknown version refuses to guess:
//! it reports corruption, which stops the node rather than letting it diverge.

use std::io;

use serde::{Serialize, de::DeserializeOwned};

/// The current on-disk value format.
pub const FORMAT_V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    // Serialising our own plain types into a Vec cannot fail.
    let body = postcard::to_stdvec(value).expect("postcard serialisation into memory");
    out.extend_from_slice(&body);
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| corrupt(format!("bad value: {e}")))
        }
        Some((v, _)) => Err(corrupt(format!("unknown value format version {v}"))),
        None => Err(corrupt("empty value".to_owned())),
    }
}

pub fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Turns a RocksDB error into the `io::Error` openraft's storage traits expect.
pub fn db_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}
