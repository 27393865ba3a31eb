//! MNIST's IDX format: a big-endian header (two zero bytes, an element-type code, the number of
//! dims, each dim as a u32) then the elements, big-endian; gzip-compressed or raw (detected by
//! gzip's magic bytes). Every malformed input is an `Err` that says what and where.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The elements of an IDX file, in the file's type.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Code 0x08.
    U8(Vec<u8>),
    /// Code 0x09.
    I8(Vec<i8>),
    /// Code 0x0B.
    I16(Vec<i16>),
    /// Code 0x0C.
    I32(Vec<i32>),
    /// Code 0x0D.
    F32(Vec<f32>),
    /// Code 0x0E.
    F64(Vec<f64>),
}

/// An IDX array: its dims and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The dims from the header (`[60000, 28, 28]` for MNIST's training images).
    pub dims: Vec<usize>,
    /// The elements.
    pub data: IdxData,
}

fn malformed(reason: String) -> Error {
    Error::Malformed { format: "IDX", reason }
}

impl IdxArray {
    /// Parses IDX bytes, gunzipping them first when they start with gzip's magic.
    ///
    /// ```
    /// use tensile::data::idx::{IdxArray, IdxData};
    /// // two u8 elements in one dim
    /// let bytes = [0, 0, 0x08, 1, 0, 0, 0, 2, 7, 9];
    /// let a = IdxArray::parse(&bytes).unwrap();
    /// assert_eq!((a.dims, a.data), (vec![2], IdxData::U8(vec![7, 9])));
    /// assert!(IdxArray::parse(&bytes[..9]).is_err()); // truncated
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut raw = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut raw)
                .map_err(|e| Error::Malformed { format: "gzip", reason: e.to_string() })?;
            return Self::parse_raw(&raw);
        }
        Self::parse_raw(bytes)
    }

    fn parse_raw(bytes: &[u8]) -> Result<Self> {
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
            return Err(malformed(format!(
                "the header of {rank} dims needs {header} bytes, the file has {}",
                bytes.len()
            )));
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
            0x08 => IdxData::U8(body.to_vec()),
            0x09 => IdxData::I8(read!(i8, 1)),
            0x0B => IdxData::I16(read!(i16, 2)),
            0x0C => IdxData::I32(read!(i32, 4)),
            0x0D => IdxData::F32(read!(f32, 4)),
            _ => IdxData::F64(read!(f64, 8)),
        };
        Ok(Self { dims, data })
    }

    /// Reads an IDX file (gzip or raw); `Err` naming the file for I/O errors and naming the
    /// problem for malformed contents.
    pub fn read<P: AsRef<Path>>(path: P) -> Result<Self> {
        let path = path.as_ref();
        Self::parse(&crate::io::read(path)?).map_err(|e| match e {
            Error::Malformed { format, reason } => {
                Error::Malformed { format, reason: format!("{}: {reason}", path.display()) }
            }
            other => other,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            IdxData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::F32(v) => v.clone(),
            IdxData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// Every element as an i64 label; `Err` for float elements.
    pub fn to_labels(&self) -> Result<Vec<i64>> {
        Ok(match &self.data {
            IdxData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            IdxData::F32(_) | IdxData::F64(_) => {
                return Err(malformed("labels must be integers, the file has floats".into()));
            }
        })
    }
}

/// Writes an IDX array as raw bytes (for tests and for tools that produce IDX).
pub fn to_bytes(a: &IdxArray) -> Vec<u8> {
    let (code, mut body): (u8, Vec<u8>) = match &a.data {
        IdxData::U8(v) => (0x08, v.clone()),
        IdxData::I8(v) => (0x09, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        IdxData::I16(v) => (0x0B, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        IdxData::I32(v) => (0x0C, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        IdxData::F32(v) => (0x0D, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        IdxData::F64(v) => (0x0E, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
    };
    let mut out = vec![0, 0, code, a.dims.len() as u8];
    for &d in &a.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.append(&mut body);
    out
}
