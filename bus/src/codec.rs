//! The one codec for internal messages: bincode 2 over serde, standard configuration.
//!
//! bincode is not self-describing, so types that cross the bus avoid `#[serde(flatten)]`, untagged enums,
//! `skip_serializing_if` and `serde_json::Value`. API objects travel as JSON bytes inside these messages.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// Largest value one message may decode into. bincode allocates a string or vector of the length a message claims
/// before reading it, so without a limit 12 hostile bytes can ask for a terabyte; 256 MiB is far above any real
/// message (replies are reassembled whole, store snapshots travel in chunks).
pub const DECODE_LIMIT: usize = 256 * 1024 * 1024;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes `value` for the bus.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| Error::Codec(format!("encode: {e}")))
}

/// Decodes a message produced by [`encode`]. Trailing bytes are an error: they mean the peer sent another type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| Error::Codec(format!("decode: {e}")))?;
    if used != bytes.len() {
        return Err(Error::Codec(format!(
            "decode: {} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Pair(u32, String),
        Named {
            key: Vec<u8>,
            rev: i64,
            prev: Option<Box<Shape>>,
        },
    }

    #[test]
    fn round_trips_enums_and_options() {
        let v = Shape::Named {
            key: b"/registry/pods/a".to_vec(),
            rev: -3,
            prev: Some(Box::new(Shape::Pair(7, "x".into()))),
        };
        assert_eq!(decode::<Shape>(&encode(&v).unwrap()).unwrap(), v);
        assert_eq!(
            decode::<Shape>(&encode(&Shape::Unit).unwrap()).unwrap(),
            Shape::Unit
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], &b"\xff\xff\xff\xff\xff"[..], &[9u8; 3][..]] {
            assert!(decode::<Shape>(bytes).is_err());
        }
        // A length prefix claiming a terabyte-long string must fail, not allocate.
        let hostile = [0x02, 0xfd, 0, 0, 0, 0, 0, 0x01, 0, 0];
        assert!(decode::<(u8, String)>(&hostile).is_err());
        assert!(decode::<Vec<u64>>(&[0xfd, 0, 0, 0, 0, 0, 0, 0x01]).is_err());
        let mut ok = encode(&Shape::Unit).unwrap();
        ok.push(0);
        assert!(matches!(decode::<Shape>(&ok), Err(Error::Codec(_))));
    }

    /// Byte fields are encoded as bytes (`serde_bytes`) for speed; the encoding must stay the one a plain
    /// `Vec<u8>` had, since raft logs and state written before carry it.
    #[test]
    fn byte_fields_keep_the_encoding_of_a_plain_vec() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Plain {
            key: Vec<u8>,
            n: i64,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Bytes {
            #[serde(with = "serde_bytes")]
            key: Vec<u8>,
            n: i64,
        }
        for key in [Vec::new(), b"k".to_vec(), vec![0xff; 300]] {
            let plain = encode(&Plain {
                key: key.clone(),
                n: -5,
            })
            .unwrap();
            let bytes = Bytes { key, n: -5 };
            assert_eq!(encode(&bytes).unwrap(), plain);
            assert_eq!(decode::<Bytes>(&plain).unwrap(), bytes);
        }
    }
}
