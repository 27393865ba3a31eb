//! Writing files so that a crash never leaves a half-written one: the bytes go to a temporary
//! file beside the target, are flushed to disk, and the temporary file is renamed over the
//! target (a rename within one directory is atomic on the platforms tensile supports).

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::Path;

/// An [`Error::Io`] for `path`.
pub(crate) fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// Writes `bytes` to `path` through a temporary file and a rename: the old file, if any, stays
/// whole until the new one is complete. On error the temporary file is removed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io { path: path.display().to_string(), reason: "the path names no file".into() })?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(path, e));
    }
    Ok(())
}

/// The whole file at `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri isolates the file system")]
    fn replaces_a_file_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("tensile-io-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.bin");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.bin"]);
        // a directory that does not exist: an Err naming the path, and nothing written
        let err = write_atomically(&dir.join("missing/x.bin"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
