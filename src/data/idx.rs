//! MNIST's IDX format: a big-endian header (two zero bytes, an element-type code, the number of
//! dims, each dim as a u32) then the elements, big-endian; gzip-compressed or raw (detected by
//! gzip's magic bytes). Every malformed input is an `Err` that says what and where.

use super::array::{Array, Elements};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

fn malformed(reason: String) -> Error {
    Error::Malformed { format: "IDX", reason }
}

/// Parses IDX bytes, gunzipping them first when they start with gzip's magic.
///
/// ```
/// use tensile::data::array::Elements;
/// // two u8 elements in one dim
/// let bytes = [0, 0, 0x08, 1, 0, 0, 0, 2, 7, 9];
/// let a = tensile::data::idx::parse(&bytes).unwrap();
/// assert_eq!((a.dims, a.data), (vec![2], Elements::U8(vec![7, 9])));
/// assert!(tensile::data::idx::parse(&bytes[..9]).is_err()); // truncated
/// ```
pub fn parse(bytes: &[u8]) -> Result<Array> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| Error::Malformed { format: "gzip", reason: e.to_string() })?;
        return parse_raw(&raw);
    }
    parse_raw(bytes)
}

fn parse_raw(bytes: &[u8]) -> Result<Array> {
    if bytes.len() < 4 {
        return Err(malformed(format!("{} bytes, shorter than the 4-byte magic", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(malformed(format!("the magic starts {:#04x} {:#04x}, not two zero bytes", bytes[0], bytes[1])));
    }
    let (code, rank) = (bytes[2], bytes[3] as usize);
    let width = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        other => return Err(malformed(format!("element type code {other:#04x} is not one of 08 09 0B 0C 0D 0E"))),
    };
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(malformed(format!("the header of {rank} dims needs {header} bytes, the file has {}", bytes.len())));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let expected = count.and_then(|n| n.checked_mul(width));
    let body = &bytes[header..];
    if expected != Some(body.len()) {
        return Err(malformed(format!(
            "dims {dims:?} of {width}-byte elements need {} bytes after the {header}-byte header; there are {}",
            expected.map_or("more than usize::MAX".to_string(), |e| e.to_string()),
            body.len()
        )));
    }
    macro_rules! read {
        ($t:ty, $n:literal) => {
            body.chunks_exact($n).map(|c| <$t>::from_be_bytes(c.try_into().expect("chunk width"))).collect()
        };
    }
    let data = match code {
        0x08 => Elements::U8(body.to_vec()),
        0x09 => Elements::I8(read!(i8, 1)),
        0x0B => Elements::I16(read!(i16, 2)),
        0x0C => Elements::I32(read!(i32, 4)),
        0x0D => Elements::F32(read!(f32, 4)),
        _ => Elements::F64(read!(f64, 8)),
    };
    Ok(Array { dims, data })
}

/// Reads an IDX file (gzip or raw); `Err` naming the file for I/O errors and naming the
/// problem for malformed contents.
pub fn read<P: AsRef<Path>>(path: P) -> Result<Array> {
    super::array::read_file(path.as_ref(), parse)
}

/// Writes an IDX array as raw bytes (for tests and for tools that produce IDX).
pub fn to_bytes(a: &Array) -> Result<Vec<u8>> {
    let (code, mut body): (u8, Vec<u8>) = match &a.data {
        Elements::U8(v) => (0x08, v.clone()),
        Elements::I8(v) => (0x09, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        Elements::I16(v) => (0x0B, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        Elements::I32(v) => (0x0C, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        Elements::F32(v) => (0x0D, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        Elements::F64(v) => (0x0E, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        other => return Err(malformed(format!("IDX has no element type for {}", other.type_name()))),
    };
    let mut out = vec![0, 0, code, a.dims.len() as u8];
    for &d in &a.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.append(&mut body);
    Ok(out)
}
