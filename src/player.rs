//! `swarmcast watch --player CMD`: the stream played into a player's standard input.
//!
//! The player is started with a pipe as its stdin, and the viewer's own stdout is made that
//! pipe (`dup2`), so the viewer writes exactly what `-o -` would write, and its closed-output
//! watch (the reader going away stops the viewer at once) works as for `| mpv -`. The player
//! keeps the viewer's original stdout and stderr (the terminal). When the viewer ends, its
//! stdout becomes `/dev/null`, which closes the player's stdin: at the end of the stream it gets
//! [`END_GRACE`] to play what it holds and exit, after Ctrl-C or an error it is killed.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long a player may take to exit after the end of the stream closed its input (what it
/// has buffered still plays) before it is killed.
pub(crate) const END_GRACE: Duration = Duration::from_secs(10);

/// A player's command line, split into words as a POSIX shell would (quotes and backslashes;
/// no variables, globs or redirections: for those, `sh -c '...'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlayerCommand {
    /// As given.
    pub(crate) line: String,
    /// The program and its arguments.
    pub(crate) argv: Vec<String>,
}

impl std::str::FromStr for PlayerCommand {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        let argv = shlex::split(line).ok_or_else(|| {
            format!("cannot split {line:?} into words: a quote is not closed, or it ends in a lone backslash")
        })?;
        if argv.is_empty() {
            return Err("the player command is empty (e.g. 'mpv -', 'vlc -', 'ffplay -')".into());
        }
        Ok(Self {
            line: line.trim().to_owned(),
            argv,
        })
    }
}

/// A running player fed by the viewer's stdout.
pub(crate) struct Player {
    child: tokio::process::Child,
    line: String,
    /// The viewer's stdout still feeds the player.
    feeding: bool,
    /// We killed it (Ctrl-C).
    killed: bool,
}

impl Player {
    /// Starts the player and makes the viewer's stdout its stdin.
    pub(crate) fn start(cmd: &PlayerCommand) -> Result<Self> {
        let (reader, writer) = std::io::pipe().context("cannot make a pipe for the player")?;
        let child = {
            // Dropped right after the spawn: the command holds the pipe's reading end, and the
            // player's exit is seen only once no other process holds it.
            let mut command = tokio::process::Command::new(&cmd.argv[0]);
            command
                .args(&cmd.argv[1..])
                .stdin(reader)
                .kill_on_drop(true);
            command
                .spawn()
                .with_context(|| format!("cannot start the player `{}`", cmd.line))?
        };
        nix::unistd::dup2_stdout(&writer).with_context(|| {
            format!(
                "cannot connect the output to the player `{}`'s input",
                cmd.line
            )
        })?;
        drop(writer);
        tracing::debug!(player = %cmd.line, pid = child.id(), "player started");
        Ok(Self {
            child,
            line: cmd.line.clone(),
            feeding: true,
            killed: false,
        })
    }

    /// Closes the player's stdin: the viewer's stdout becomes `/dev/null` (not the original
    /// stdout: a viewer still stopping must not write the stream to the terminal).
    fn close_input(&mut self) {
        if !std::mem::take(&mut self.feeding) {
            return;
        }
        let closed = std::fs::File::open("/dev/null")
            .and_then(|null| nix::unistd::dup2_stdout(null).map_err(std::io::Error::from));
        if let Err(e) = closed {
            tracing::warn!(error = %e, "cannot close the player's input");
        }
    }

    /// Ctrl-C: the player is killed at once (its input closed), without waiting for the viewer
    /// to stop: a player that does not read would otherwise hold the viewer in a write to a
    /// full pipe. [`finish`](Self::finish) then reports it.
    pub(crate) fn interrupt(&mut self) {
        self.close_input();
        self.killed = true;
        if let Err(e) = self.child.start_kill() {
            tracing::debug!(error = %e, "the player had exited already");
        }
    }

    /// Ends the player once the viewer has stopped: closes its input, then waits for it
    /// ([`END_GRACE`] at most after the end of the stream; not at all when `interrupted`, when
    /// it is killed at once). Returns what to report; an error if the player failed on its own
    /// (an exit status other than 0, or a signal we did not send).
    pub(crate) async fn finish(mut self, interrupted: bool) -> Result<String> {
        self.close_input();
        if !interrupted && !self.killed {
            if let Ok(status) = tokio::time::timeout(END_GRACE, self.child.wait()).await {
                let status = status
                    .with_context(|| format!("cannot wait for the player `{}`", self.line))?;
                if !status.success() {
                    bail!("the player `{}` failed: {status}", self.line);
                }
                return Ok(format!("the player `{}` exited ({status})", self.line));
            }
        }
        if !self.killed {
            self.killed = true;
            let _ = self.child.start_kill();
        }
        let status = self.child.wait().await.ok();
        let why = if interrupted {
            "interrupted".to_owned()
        } else {
            format!(
                "it did not exit within {} s of the end of the stream",
                END_GRACE.as_secs()
            )
        };
        Ok(format!(
            "the player `{}` was stopped ({why}){}",
            self.line,
            status.map_or(String::new(), |s| format!(": {s}"))
        ))
    }
}

impl Drop for Player {
    /// An error, or the viewer dropped: the input is closed and the child killed
    /// (`kill_on_drop`).
    fn drop(&mut self) {
        self.close_input();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_player_command_is_split_as_a_shell_would() {
        let cmd: PlayerCommand = "  mpv --really-quiet -  ".parse().unwrap();
        assert_eq!(cmd.argv, ["mpv", "--really-quiet", "-"]);
        assert_eq!(cmd.line, "mpv --really-quiet -");
        let cmd: PlayerCommand = r#"sh -c 'cat > "my file.ts"' x\ y"#.parse().unwrap();
        assert_eq!(cmd.argv, ["sh", "-c", r#"cat > "my file.ts""#, "x y"]);
    }

    #[test]
    fn an_empty_or_unbalanced_player_command_is_refused() {
        let e = "".parse::<PlayerCommand>().unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = "   ".parse::<PlayerCommand>().unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = "mpv 'unclosed".parse::<PlayerCommand>().unwrap_err();
        assert!(e.contains("quote is not closed"), "{e}");
    }
}
