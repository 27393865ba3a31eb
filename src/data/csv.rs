//! CSV files of numbers: one row per line, fields separated by commas, an optional header row.
//! A field that is not a number, or a row of another length, is an `Err` naming the line and
//! the column.

use super::array::{Array, Elements};
use crate::error::{Error, Result};
use std::path::Path;

fn malformed(reason: String) -> Error {
    Error::Malformed { format: "CSV", reason }
}

/// Parses CSV text into a `(rows, columns)` f64 array, skipping the first line when `header`
/// (and blank lines anywhere).
///
/// ```
/// let a = tensile::data::csv::parse("x,y\n1,2.5\n3,-4\n", true).unwrap();
/// assert_eq!(a.dims, vec![2, 2]);
/// assert_eq!(a.to_f64(), vec![1.0, 2.5, 3.0, -4.0]);
/// let err = tensile::data::csv::parse("1,2\n3,x\n", false).unwrap_err();
/// assert!(err.to_string().contains("line 2, column 2"));
/// ```
pub fn parse(text: &str, header: bool) -> Result<Array> {
    let mut values = Vec::new();
    let (mut rows, mut columns) = (0, None);
    for (n, line) in text.lines().enumerate().skip(usize::from(header)) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut count = 0;
        for (c, field) in line.split(',').enumerate() {
            let field = field.trim();
            let v: f64 = field
                .parse()
                .map_err(|_| malformed(format!("line {}, column {}: {field:?} is not a number", n + 1, c + 1)))?;
            values.push(v);
            count += 1;
        }
        match columns {
            None => columns = Some(count),
            Some(k) if k != count => {
                return Err(malformed(format!("line {}: {count} fields, the first row has {k}", n + 1)));
            }
            Some(_) => {}
        }
        rows += 1;
    }
    Ok(Array { dims: vec![rows, columns.unwrap_or(0)], data: Elements::F64(values) })
}

/// Reads a CSV file (see [`parse`]).
pub fn read<P: AsRef<Path>>(path: P, header: bool) -> Result<Array> {
    super::array::read_file(path.as_ref(), |bytes| {
        let text = std::str::from_utf8(bytes).map_err(|e| malformed(format!("not UTF-8 ({e})")))?;
        parse(text, header)
    })
}
