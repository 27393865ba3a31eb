//! NumPy's `.npy` format (versions 1 to 3): the magic `\x93NUMPY`, a version, a little-endian
//! header length, a Python-literal header `{'descr': '<f4', 'fortran_order': False, 'shape':
//! (3, 4), }`, then the elements. Little- and big-endian element types are read, and
//! Fortran-ordered arrays are returned in row-major order.

use super::array::{Array, Elements};
use crate::error::{Error, Result};
use std::path::Path;

fn malformed(reason: String) -> Error {
    Error::Malformed { format: "npy", reason }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// The value after `'key':` in the header dict, up to the next `,` outside parentheses.
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let at =
        header.find(&format!("'{key}'")).ok_or_else(|| malformed(format!("the header has no '{key}': {header}")))?;
    let rest = header[at + key.len() + 2..].trim_start();
    let rest = rest.strip_prefix(':').ok_or_else(|| malformed(format!("no ':' after '{key}'")))?.trim_start();
    let mut depth = 0;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(rest[..i].trim()),
            _ => {}
        }
    }
    Err(malformed(format!("the value of '{key}' does not end")))
}

/// Parses `.npy` bytes.
///
/// ```
/// use tensile::data::{array::{Array, Elements}, npy};
/// let a = Array { dims: vec![2, 2], data: Elements::F32(vec![1.0, 2.0, 3.0, 4.0]) };
/// let bytes = npy::to_bytes(&a);
/// assert_eq!(npy::parse(&bytes).unwrap(), a);
/// assert!(npy::parse(&bytes[..bytes.len() - 1]).is_err());
/// ```
pub fn parse(bytes: &[u8]) -> Result<Array> {
    if !bytes.starts_with(MAGIC) {
        return Err(malformed("the file does not start with \\x93NUMPY".into()));
    }
    let (len_at, len_bytes) = match bytes.get(6) {
        Some(1) => (8, 2),
        Some(2 | 3) => (8, 4),
        Some(v) => return Err(malformed(format!("format version {v} is not 1, 2 or 3"))),
        None => return Err(malformed("the file ends inside the magic".into())),
    };
    let len_field = bytes
        .get(len_at..len_at + len_bytes)
        .ok_or_else(|| malformed("the file ends before the header length".into()))?;
    let header_len = len_field.iter().rev().fold(0usize, |n, &b| (n << 8) | b as usize);
    let start = len_at + len_bytes;
    let header = bytes.get(start..start + header_len).ok_or_else(|| {
        malformed(format!("the header of {header_len} bytes runs past the end ({} bytes)", bytes.len()))
    })?;
    let header = std::str::from_utf8(header).map_err(|_| malformed("the header is not text".into()))?;
    let descr = field(header, "descr")?.trim_matches(|c| c == '\'' || c == '"');
    let fortran = match field(header, "fortran_order")? {
        "True" => true,
        "False" => false,
        other => return Err(malformed(format!("fortran_order is {other}"))),
    };
    let shape = field(header, "shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| malformed(format!("the shape {shape} is not a tuple")))?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| malformed(format!("the dim {d} is not a number"))))
        .collect::<Result<Vec<usize>>>()?;
    // split after the first character, not the first byte: a damaged header may hold any UTF-8
    let first = descr.chars().next().map_or(0, char::len_utf8);
    let (order, code) = descr.split_at(first);
    let little = match order {
        "<" | "|" | "=" => true,
        ">" => false,
        _ => return Err(malformed(format!("the dtype {descr} has no byte order"))),
    };
    let width = match code {
        "u1" | "i1" | "b1" => 1,
        "i2" => 2,
        "i4" | "f4" => 4,
        "i8" | "f8" => 8,
        _ => return Err(malformed(format!("dtype {descr} is not one of u1 i1 b1 i2 i4 i8 f4 f8"))),
    };
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let body = &bytes[start + header_len..];
    if count.and_then(|n| n.checked_mul(width)) != Some(body.len()) {
        return Err(malformed(format!(
            "shape {dims:?} of {width}-byte elements does not fit the {} data bytes",
            body.len()
        )));
    }
    macro_rules! read {
        ($t:ty, $n:literal) => {
            body.chunks_exact($n)
                .map(|c| {
                    let b: [u8; $n] = c.try_into().expect("chunk width");
                    if little { <$t>::from_le_bytes(b) } else { <$t>::from_be_bytes(b) }
                })
                .collect()
        };
    }
    let data = match code {
        "u1" => Elements::U8(body.to_vec()),
        "i1" => Elements::I8(read!(i8, 1)),
        "b1" => Elements::Bool(body.iter().map(|&b| b != 0).collect()),
        "i2" => Elements::I16(read!(i16, 2)),
        "i4" => Elements::I32(read!(i32, 4)),
        "i8" => Elements::I64(read!(i64, 8)),
        "f4" => Elements::F32(read!(f32, 4)),
        _ => Elements::F64(read!(f64, 8)),
    };
    let array = Array { dims, data };
    Ok(if fortran { to_row_major(array) } else { array })
}

/// A column-major array's elements in row-major order.
fn to_row_major(a: Array) -> Array {
    let dims = a.dims.clone();
    let n: usize = dims.iter().product();
    // element at row-major position i comes from column-major offset Σ idx[k] * prod(dims[..k])
    let source = |mut i: usize| {
        let (mut offset, mut stride) = (0, 1);
        let mut idx = vec![0; dims.len()];
        for k in (0..dims.len()).rev() {
            idx[k] = i % dims[k].max(1);
            i /= dims[k].max(1);
        }
        for (k, &ix) in idx.iter().enumerate() {
            offset += ix * stride;
            stride *= dims[k];
        }
        offset
    };
    macro_rules! reorder {
        ($v:expr, $variant:ident) => {
            Elements::$variant((0..n).map(|i| $v[source(i)]).collect())
        };
    }
    let data = match &a.data {
        Elements::U8(v) => reorder!(v, U8),
        Elements::I8(v) => reorder!(v, I8),
        Elements::I16(v) => reorder!(v, I16),
        Elements::I32(v) => reorder!(v, I32),
        Elements::I64(v) => reorder!(v, I64),
        Elements::F32(v) => reorder!(v, F32),
        Elements::F64(v) => reorder!(v, F64),
        Elements::Bool(v) => reorder!(v, Bool),
    };
    Array { dims, data }
}

/// Reads a `.npy` file.
pub fn read<P: AsRef<Path>>(path: P) -> Result<Array> {
    super::array::read_file(path.as_ref(), parse)
}

/// The array as `.npy` bytes (version 1, little-endian, row-major).
pub fn to_bytes(a: &Array) -> Vec<u8> {
    let (descr, body): (&str, Vec<u8>) = match &a.data {
        Elements::U8(v) => ("|u1", v.clone()),
        Elements::I8(v) => ("|i1", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Elements::Bool(v) => ("|b1", v.iter().map(|&x| u8::from(x)).collect()),
        Elements::I16(v) => ("<i2", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Elements::I32(v) => ("<i4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Elements::I64(v) => ("<i8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Elements::F32(v) => ("<f4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Elements::F64(v) => ("<f8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    let shape = match a.dims.len() {
        1 => format!("({},)", a.dims[0]),
        _ => format!("({})", a.dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // pad so that the data starts on a 64-byte boundary, ending in a newline
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(body);
    out
}

/// Writes the array as a `.npy` file (a temporary file renamed over `path`).
pub fn write<P: AsRef<Path>>(a: &Array, path: P) -> Result<()> {
    crate::io::write_atomically(path.as_ref(), &to_bytes(a))
}
