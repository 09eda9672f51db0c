//! Where the page's hls.js comes from. swarmcast does not ship hls.js (it is not committed): the
//! viewer serves `/hls.min.js` from a file it finds when it starts, in this order:
//!
//! 1. `--hls-js PATH` (env `SWARMCAST_HLS_JS`): that file, which must exist;
//! 2. `node_modules/hls.js/dist/hls.min.js` under the current directory (`npm ci` in a checkout);
//! 3. the same under each ancestor of the executable's directory, nearest first (so
//!    `target/release/swarmcast` in a checkout finds the checkout's `node_modules`).
//!
//! Without it the page says how to install it ([`MISSING`]), and `/hls.min.js` answers 404 with
//! that text.

use std::path::{Path, PathBuf};

/// hls.js's file under a directory where npm installed it.
pub const RELATIVE: &str = "node_modules/hls.js/dist/hls.min.js";

/// What the page and `/hls.min.js` say when hls.js was not found.
pub const MISSING: &str = "hls.js was not found, so the page cannot play the stream: run `npm ci` \
     in the swarmcast checkout (or `bash scripts/install-deps.sh`), or pass --hls-js PATH \
     (env SWARMCAST_HLS_JS) to the viewer. Players (mpv, VLC, ffplay) can open /live.m3u8 or \
     /stream.ts meanwhile.";

/// Why an explicit hls.js path was refused.
#[derive(Debug, thiserror::Error)]
#[error("--hls-js {}: {source}", path.display())]
pub struct HlsJsError {
    /// The path given.
    pub path: PathBuf,
    /// Why it cannot be read.
    #[source]
    pub source: std::io::Error,
}

/// The hls.js file: `explicit` if given (an error if it is not a readable file), else the first
/// of `cwd`'s and `exe`'s directory's ancestors (nearest first) that holds [`RELATIVE`].
pub fn find(
    explicit: Option<&Path>,
    cwd: Option<&Path>,
    exe: Option<&Path>,
) -> Result<Option<PathBuf>, HlsJsError> {
    if let Some(path) = explicit {
        return match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(path.to_owned())),
            Ok(_) => Err(HlsJsError {
                path: path.to_owned(),
                source: std::io::Error::other("not a file"),
            }),
            Err(source) => Err(HlsJsError {
                path: path.to_owned(),
                source,
            }),
        };
    }
    let under_cwd = cwd.map(|d| d.join(RELATIVE));
    let under_exe = exe
        .and_then(Path::parent)
        .into_iter()
        .flat_map(Path::ancestors)
        .map(|d| d.join(RELATIVE));
    Ok(under_cwd.into_iter().chain(under_exe).find(|p| p.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(dir: &Path) -> PathBuf {
        let p = dir.join(RELATIVE);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "/* hls */").unwrap();
        p
    }

    #[test]
    fn the_lookup_order_is_explicit_cwd_then_the_executables_ancestors() {
        let t = tempfile::tempdir().unwrap();
        let (checkout, cwd) = (t.path().join("checkout"), t.path().join("elsewhere"));
        let exe = checkout.join("target/release/swarmcast");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        assert_eq!(find(None, Some(&cwd), Some(&exe)).unwrap(), None);
        let in_checkout = install(&checkout);
        assert_eq!(
            find(None, Some(&cwd), Some(&exe)).unwrap(),
            Some(in_checkout.clone())
        );
        let in_cwd = install(&cwd);
        assert_eq!(
            find(None, Some(&cwd), Some(&exe)).unwrap(),
            Some(in_cwd.clone())
        );
        let mine = t.path().join("my-hls.js");
        std::fs::write(&mine, "").unwrap();
        assert_eq!(
            find(Some(&mine), Some(&cwd), Some(&exe)).unwrap(),
            Some(mine)
        );
    }

    #[test]
    fn an_explicit_path_that_is_no_file_is_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let e = find(Some(&t.path().join("nope.js")), None, None).unwrap_err();
        assert!(e.to_string().starts_with("--hls-js "), "{e}");
        assert!(e.to_string().contains("No such file"), "{e}");
        let e = find(Some(t.path()), None, None).unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
    }
}
