//! Value encoding for everything this crate persists.
//!
//! Every stored value starts with a one-byte format version followed by its
//! postcard encoding. A reader that meets an unknown version refuses to guess:
//! it reports corruption, which stops the node rather than letting it diverge.

use std::io;

use serde::{Serialize, de::DeserializeOwned};

/// The current on-disk value format: the booking core's record format
/// version, which changes whenever a stored shape (records, log entries,
/// stored responses) does. Format 1 was every release before accounts and
/// payments (record format 3); there is no migration from it yet.
pub const FORMAT: u8 = booking::RECORD_FORMAT_VERSION as u8;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Serialising our own plain types into a Vec cannot fail.
    let body = postcard::to_stdvec(value).expect("postcard serialisation into memory");
    out.extend_from_slice(&body);
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|e| corrupt(format!("bad value: {e}"))),
        Some((v, _)) => Err(corrupt(format!(
            "value format version {v}, but this build reads only version {FORMAT}: the data directory was written by another release and no migration exists"
        ))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_another_format_are_refused_not_misread() {
        let encoded = encode(&42u64);
        assert_eq!(encoded[0], FORMAT);
        assert_eq!(decode::<u64>(&encoded).unwrap(), 42);
        let mut older = encoded.clone();
        older[0] = 1;
        let err = decode::<u64>(&older).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("version 1"), "{err}");
        assert!(decode::<u64>(&[]).is_err());
    }
}
