//! A segment file's torrent: open, check it is a regular file, hash it. The one place that turns a
//! file on disk into a [`SegmentTorrent`] (the pipeline's segments, and `swarmcast torrent`).

use std::path::{Path, PathBuf};

use swarmcast_core::SegmentTorrent;

/// Why a file's torrent could not be built; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentFileError {
    /// The file could not be opened, inspected or read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a regular file (a device, a pipe, a directory: no known length).
    #[error("{path} is {kind}, not a regular file: a segment torrent is built from a file of known length")]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file's name is not UTF-8 (a torrent's name is a string).
    #[error("{path}: the file name is not valid UTF-8")]
    Name {
        /// The file.
        path: PathBuf,
    },
    /// The output would replace the input.
    #[error("output {path} is the input file: refusing to overwrite it")]
    OutputIsInput {
        /// The file.
        path: PathBuf,
    },
    /// The `.torrent` could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The torrent could not be built (an empty file, a bad piece length).
    #[error("cannot build a torrent for {path}")]
    Build {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: swarmcast_core::TorrentError,
    },
}

/// The torrent of the file at `path`, named `name` in it (blocking: run it off the runtime).
pub fn torrent_of_file(
    path: &Path,
    name: &str,
    piece_length: Option<u64>,
    trackers: Vec<String>,
) -> Result<SegmentTorrent, SegmentFileError> {
    let read = |source| SegmentFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(SegmentFileError::NotAFile {
            path: path.to_owned(),
            kind: file_kind(&meta.file_type()),
        });
    }
    SegmentTorrent::build(
        std::io::BufReader::new(file),
        meta.len(),
        name,
        piece_length,
        trackers,
    )
    .map_err(|source| SegmentFileError::Build {
        path: path.to_owned(),
        source,
    })
}

/// `swarmcast torrent`: writes the torrent of `file` (named in it by its file name) to `out`, or
/// next to it as `FILE.torrent`, refusing to overwrite the input. Where it wrote, and the
/// torrent.
pub fn write_torrent(
    file: &Path,
    piece_length: Option<u64>,
    trackers: Vec<String>,
    out: Option<&Path>,
) -> Result<(PathBuf, SegmentTorrent), SegmentFileError> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SegmentFileError::Name {
            path: file.to_owned(),
        })?;
    let torrent = torrent_of_file(file, name, piece_length, trackers)?;
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| {
        let mut p = file.as_os_str().to_owned();
        p.push(".torrent");
        p.into()
    });
    if let (Ok(a), Ok(b)) = (out.canonicalize(), file.canonicalize()) {
        if a == b {
            return Err(SegmentFileError::OutputIsInput { path: out });
        }
    }
    std::fs::write(&out, torrent.to_torrent_bytes()).map_err(|source| SegmentFileError::Write {
        path: out.clone(),
        source,
    })?;
    Ok((out, torrent))
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}
