//! The docs cannot rot: every command in README.md and docs/**/*.md runs here, against the
//! real binaries.
//!
//! The convention, for whoever writes a page:
//!
//! - Commands go in ```` ```console ```` blocks, one per `$ ` line. A line ending in `\`
//!   continues on the next; a here-document (`cat > f <<'EOF'` … `EOF`) belongs to its command.
//!   Every other line of the block is the command's sample output.
//! - Each document runs as one bash script (`set -e`), its commands in order, in a fresh temp
//!   folder, with `airlock` and `airlock-serve` first on `PATH`, the checkout in `$AIRLOCK_REPO`
//!   and a `scripts` link to the checkout's `scripts/` (so the README's `./scripts/demo` runs).
//!   Variables, `cd` and background jobs carry over from one command to the next; background
//!   jobs are killed at the end.
//! - Sample output is checked loosely: its non-blank lines must appear in the command's output
//!   (stdout and stderr together) in that order, each line whole; `…` in a line stands for any
//!   text, and a line of just `…` for any lines. The output of a command that ends in `--help` is
//!   checked exactly (the CLI reference is made of them; `AIRLOCK_DOCS_UPDATE=1 cargo test -p
//!   airlock --test e2e docs` rewrites them from the binary).
//! - A console block that must not run (it only makes sense on a real device) is preceded by
//!   `<!-- not run: REASON -->`. Keep them rare: show such things as file content instead.
//! - ```` ```sh ````, ```` ```bash ```` and ```` ```shell ```` blocks are refused: a command is
//!   either run or explicitly marked.
//! - A block preceded by `<!-- same as: PATH -->` must be a verbatim excerpt of that file of the
//!   checkout (the GRUB snippet, the systemd unit, the WIT).
//! - Every ```` ```toml ```` block is parsed by the engine: a device configuration (it has
//!   `[device]`) as a whole, a bundle description (`[[payload]]`) as one, and any other block
//!   that has `[plugins.…]`, `[chain]`, `[download]`, `[slots.…]`, `[boot]`, `[trust]` or `[fleet]` as a
//!   fragment of a device configuration (a minimal device fills in the tables it lacks).
//!
//! Failures name the document, the line and the output of the failing command.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The checkout.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the checkout")
}

/// README.md and every page under docs/, sorted.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let root = repo();
    let mut docs = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut docs);
    docs.sort();
    docs
}

/// A document's path relative to the checkout, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced block of a Markdown document.
#[derive(Debug)]
struct Block {
    /// The info string after the opening fence (`console`, `toml`, …).
    info: String,
    /// 1-based line number of the opening fence.
    fence_line: usize,
    /// The block's lines, without the fences.
    lines: Vec<String>,
    /// The HTML comment right before the fence, if any (`not run: …`, `same as: …`).
    marker: Option<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut last_nonblank = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            Some(block) => {
                if trimmed.starts_with("```") && trimmed.trim() == "```" {
                    out.push(open.take().expect("an open block"));
                } else {
                    block.lines.push(line.to_string());
                }
            }
            None if trimmed.starts_with("```") => {
                let marker = last_nonblank
                    .trim()
                    .strip_prefix("<!--")
                    .and_then(|m| m.strip_suffix("-->"))
                    .map(|m| m.trim().to_string());
                open = Some(Block {
                    info: trimmed.trim_start_matches('`').trim().to_string(),
                    fence_line: i + 1,
                    lines: Vec::new(),
                    marker,
                });
            }
            None => {}
        }
        if !line.trim().is_empty() {
            last_nonblank = line.to_string();
        }
    }
    if let Some(block) = open {
        out.push(Block {
            info: format!("UNCLOSED {}", block.info),
            ..block
        });
    }
    out
}

/// One `$ ` command of a console block, with the sample output the document shows for it.
#[derive(Debug)]
struct DocCommand {
    /// 1-based line number of the `$ ` line.
    line: usize,
    text: String,
    /// Sample output: (1-based line number, text).
    expected: Vec<(usize, String)>,
}

impl DocCommand {
    fn is_help(&self) -> bool {
        self.text.trim_end().ends_with("--help")
    }
}

/// The delimiter of a here-document the line opens (`<<EOF`, `<<'EOF'`, `<<-"EOF"`), if any.
fn heredoc_end(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    let rest = rest.trim_start_matches(['\'', '"']);
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

fn console_commands(doc: &str, block: &Block) -> Result<Vec<DocCommand>, String> {
    let mut commands: Vec<DocCommand> = Vec::new();
    let mut lines = block.lines.iter().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let number = block.fence_line + 1 + i;
        let Some(first) = line.strip_prefix("$ ") else {
            match commands.last_mut() {
                Some(c) => c.expected.push((number, line.clone())),
                None if line.trim().is_empty() => {}
                None => {
                    return Err(format!(
                        "{doc}:{number}: a console block must start with a `$ ` command line, found {line:?}"
                    ));
                }
            }
            continue;
        };
        let mut text = first.to_string();
        let mut heredoc = heredoc_end(first);
        let mut continued = first.ends_with('\\');
        while continued || heredoc.is_some() {
            let Some((_, next)) = lines.next() else {
                return Err(format!(
                    "{doc}:{number}: the command does not end inside its block (a trailing `\\` or an unterminated here-document)"
                ));
            };
            text.push('\n');
            text.push_str(next);
            if let Some(end) = &heredoc {
                if next.trim() == end {
                    heredoc = None;
                }
            } else {
                continued = next.ends_with('\\');
                heredoc = heredoc_end(next);
            }
        }
        commands.push(DocCommand {
            line: number,
            text,
            expected: Vec::new(),
        });
    }
    Ok(commands)
}

/// Whether `actual` matches the sample line `pattern`, where `…` stands for any text.
fn line_matches(pattern: &str, actual: &str) -> bool {
    let (pattern, actual) = (pattern.trim(), actual.trim());
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The loose check: the sample's non-blank lines appear in `actual` in order. Returns the
/// first sample line that does not, with its line number.
fn loose_mismatch<'a>(
    expected: &'a [(usize, String)],
    actual: &str,
) -> Option<&'a (usize, String)> {
    let mut actual_lines = actual.lines();
    for sample in expected {
        let pattern = sample.1.trim();
        if pattern.is_empty() || pattern == "…" {
            continue;
        }
        if !actual_lines.any(|a| line_matches(pattern, a)) {
            return Some(sample);
        }
    }
    None
}

/// Output as a help block shows it: trailing spaces and blank lines removed.
fn normalize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let start = lines.iter().position(|l| !l.is_empty()).unwrap_or(end);
    lines[start..end].join("\n")
}

/// Where `airlock` and `airlock-serve` are: the folder cargo built `airlock` into.
/// `airlock-serve` belongs to another package (airlock-testkit); it is built when missing.
fn bin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_airlock"))
            .parent()
            .expect("the binary's folder")
            .to_path_buf();
        if !dir.join("airlock-serve").is_file() {
            let target = dir.parent().expect("the target folder");
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "-q",
                    "-p",
                    "airlock-testkit",
                    "--bin",
                    "airlock-serve",
                ])
                .current_dir(repo())
                .env("CARGO_TARGET_DIR", target)
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "the docs need airlock-serve; `cargo build -p airlock-testkit` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
    .clone()
}

/// Pages whose ```sh blocks predate this test, reported instead of failed. Their owners convert
/// them (```console, or `<!-- not run: REASON -->` for what runs for hours); then drop the entry.
const SH_BLOCKS_TOLERATED: &[&str] = &[];

const MARK: &str = "@@airlock-docs-command@@";

/// How long one document's commands may take together (plugin guides build components).
const DOC_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What running a document's commands found.
struct DocRun {
    /// Per command: its output.
    outputs: Vec<String>,
    /// The command that failed (index) and its exit status, if one did.
    failed: Option<(usize, String)>,
    dir: PathBuf,
}

fn run_document(doc: &str, commands: &[DocCommand]) -> DocRun {
    let tmp = tempfile::Builder::new()
        .prefix("airlock-docs.")
        .tempdir()
        .expect("a temp dir");
    let dir = tmp.path().to_path_buf();
    std::os::unix::fs::symlink(repo().join("scripts"), dir.join("scripts")).unwrap();
    let mut script =
        String::from("set -e\nexec 2>&1\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for (i, c) in commands.iter().enumerate() {
        script.push_str(&format!("printf '\\n{MARK} {i}\\n'\n{}\n", c.text));
    }
    script.push_str(&format!("printf '\\n{MARK} end\\n'\n"));
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .env("PATH", path)
            .env("AIRLOCK_REPO", repo())
            .env("DEMO_DIR", dir.join("demo"))
            .env("AIRLOCK_BIN_DIR", bin_dir())
            .env("XDG_CACHE_HOME", dir.join(".cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        for var in [
            "AIRLOCK_CONFIG",
            "AIRLOCK_KILL_AT",
            "AIRLOCK_FAULT_LOG",
            "AIRLOCK_RELIABILITY_REPORT",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.spawn().expect("bash runs")
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for bash") {
            break Some(status);
        }
        if started.elapsed() > DOC_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The whole process group: bash, and whatever a command left running.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
    let text = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();

    let mut outputs = vec![String::new(); commands.len()];
    let mut current: Option<usize> = None;
    let mut finished = false;
    for line in text.lines() {
        if let Some(tag) = line.strip_prefix(MARK) {
            match tag.trim() {
                "end" => finished = true,
                n => current = n.parse().ok(),
            }
            continue;
        }
        if let Some(out) = current.and_then(|i| outputs.get_mut(i)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let failed = match status {
        Some(s) if s.success() && finished => None,
        Some(s) => Some((current.unwrap_or(0), format!("{s}"))),
        None => Some((
            current.unwrap_or(0),
            format!("still running after {} s; killed", DOC_TIMEOUT.as_secs()),
        )),
    };
    let dir = if failed.is_some() {
        // Keep the folder for a look at what the commands left behind.
        tmp.keep()
    } else {
        drop(tmp);
        dir
    };
    let _ = doc;
    DocRun {
        outputs,
        failed,
        dir,
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

/// Runs one document; returns what went wrong, and the help blocks to rewrite in update mode
/// as (first sample line, sample line count, new text).
fn check_document(path: &Path) -> (Vec<String>, Vec<(usize, usize, String)>) {
    let doc = rel(path);
    let text = std::fs::read_to_string(path).unwrap();
    let mut errors = Vec::new();
    let mut commands = Vec::new();
    for block in blocks(&text) {
        let marker = block.marker.as_deref().unwrap_or("");
        if let Some(reason) = marker.strip_prefix("not run:") {
            if reason.trim().is_empty() {
                errors.push(format!(
                    "{doc}:{}: `<!-- not run: -->` needs a reason",
                    block.fence_line
                ));
            }
            if block.info != "console" {
                errors.push(format!(
                    "{doc}:{}: `not run` marks only ```console blocks",
                    block.fence_line
                ));
            }
            continue;
        }
        match block.info.as_str() {
            "console" => match console_commands(&doc, &block) {
                Ok(c) => commands.extend(c),
                Err(e) => errors.push(e),
            },
            "sh" | "bash" | "shell" | "zsh" | "shell-session"
                if SH_BLOCKS_TOLERATED.contains(&doc.as_str()) =>
            {
                eprintln!(
                    "{doc}:{}: a ```{} block, not run (tests/e2e/docs.rs SH_BLOCKS_TOLERATED)",
                    block.fence_line, block.info
                )
            }
            "sh" | "bash" | "shell" | "zsh" | "shell-session" => errors.push(format!(
                "{doc}:{}: a ```{} block: write commands as ```console with `$ ` lines (tests/e2e/docs.rs runs them), show a script as a file, or mark the block `<!-- not run: REASON -->`",
                block.fence_line, block.info
            )),
            info if info.starts_with("UNCLOSED") => errors.push(format!(
                "{doc}:{}: this fenced block is never closed",
                block.fence_line
            )),
            _ => {}
        }
    }
    if commands.is_empty() {
        return (errors, Vec::new());
    }
    let run = run_document(&doc, &commands);
    let mut rewrites = Vec::new();
    let update = std::env::var_os("AIRLOCK_DOCS_UPDATE").is_some();
    for (i, c) in commands.iter().enumerate() {
        if let Some((failed, status)) = &run.failed {
            if *failed == i {
                errors.push(format!(
                    "{doc}:{}: `{}` failed ({status}); its output:\n{}(the commands ran in {})",
                    c.line,
                    c.text,
                    indent(&run.outputs[i]),
                    run.dir.display()
                ));
            }
            if *failed <= i {
                break;
            }
        }
        let actual = &run.outputs[i];
        if c.is_help() {
            let want = normalize(
                &c.expected
                    .iter()
                    .map(|(_, l)| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            let got = normalize(actual);
            if want != got {
                if update {
                    let first = c.expected.first().map_or(c.line + 1, |(n, _)| *n);
                    rewrites.push((first, c.expected.len(), got));
                } else {
                    errors.push(format!(
                        "{doc}:{}: `{}` prints something else than the document shows (AIRLOCK_DOCS_UPDATE=1 rewrites it); it prints:\n{}",
                        c.line,
                        c.text,
                        indent(&got)
                    ));
                }
            }
        } else if let Some((number, sample)) = loose_mismatch(&c.expected, actual) {
            errors.push(format!(
                "{doc}:{number}: the output of `{}` (line {}) has no line matching {:?} after the lines matched before it; the output:\n{}",
                c.text,
                c.line,
                sample.trim(),
                indent(actual)
            ));
        }
    }
    (errors, rewrites)
}

/// Replaces sample output lines of `path`: (first line, line count, new text), 1-based.
fn rewrite(path: &Path, mut rewrites: Vec<(usize, usize, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    rewrites.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (first, count, new) in rewrites {
        let at = first - 1;
        lines.splice(at..at + count, new.lines().map(String::from));
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn every_command_in_the_docs_runs() {
    let docs = documents();
    let threads: Vec<_> = docs
        .iter()
        .cloned()
        .map(|path| std::thread::spawn(move || (path.clone(), check_document(&path))))
        .collect();
    let mut errors = Vec::new();
    for t in threads {
        let (path, (errs, rewrites)) = t.join().expect("a document's thread");
        errors.extend(errs);
        if !rewrites.is_empty() {
            eprintln!("rewrote {} help block(s) in {}", rewrites.len(), rel(&path));
            rewrite(&path, rewrites);
        }
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n\n"));
}

/// Every command the binary has (from `airlock … --help`), as its words after `airlock`.
fn cli_commands(prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut args = prefix.to_vec();
    args.push("--help".into());
    let help = crate::support::ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut in_commands = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if line.trim().is_empty() || !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or("");
            if name.is_empty() || name == "help" {
                continue;
            }
            let mut sub = prefix.to_vec();
            sub.push(name.to_string());
            out.push(sub.clone());
            cli_commands(&sub, out);
        }
    }
}

#[test]
fn the_cli_reference_covers_every_command() {
    let path = repo().join("docs/reference/cli.md");
    let text = std::fs::read_to_string(&path).expect("docs/reference/cli.md");
    let documented: BTreeSet<String> = blocks(&text)
        .iter()
        .filter(|b| b.info == "console")
        .flat_map(|b| console_commands("docs/reference/cli.md", b).unwrap_or_default())
        .filter(|c| c.is_help())
        .map(|c| c.text.trim().to_string())
        .collect();
    let mut commands = vec![Vec::new()];
    cli_commands(&[], &mut commands);
    let missing: Vec<String> = commands
        .iter()
        .map(|words| {
            let mut line = String::from("airlock ");
            for w in words {
                line.push_str(w);
                line.push(' ');
            }
            line + "--help"
        })
        .filter(|line| !documented.contains(line))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reference/cli.md does not show these commands' help; add a ```console block with `$ COMMAND` for each (AIRLOCK_DOCS_UPDATE=1 fills in the output):\n{}",
        missing.join("\n")
    );
}

/// The tables a fragment of a device configuration lacks come from this device.
const BASE_CONFIG: &str = r#"
[device]
type = "acme-gateway-v2"
data_dir = "/var/lib/airlock"

[trust]
keys = ["/etc/airlock/keys/release.pub"]

[boot]
backend = "sim"
env = "/var/lib/airlock/bootloader.env"

[slots.rootfs]
a = "/dev/mmcblk0p2"
b = "/dev/mmcblk0p3"
"#;

fn check_toml(doc: &str, block: &Block) -> Option<String> {
    let text = block.lines.join("\n");
    let has = |prefix: &str| {
        block
            .lines
            .iter()
            .any(|l| l.trim_start().starts_with(prefix))
    };
    let at = format!("{doc}:{}", block.fence_line);
    let dir = tempfile::tempdir().expect("a temp dir");
    if has("[device]") {
        let file = dir.path().join("airlock.toml");
        return airlock::config::Config::parse(&text, &file)
            .err()
            .map(|e| format!("{at}: this airlock.toml is refused by the engine: {e}"));
    }
    if has("[[payload]]") {
        let file = dir.path().join("bundle.toml");
        std::fs::write(&file, &text).unwrap();
        return airlock::bundle::BundleSpec::load(&file)
            .err()
            .map(|e| format!("{at}: this bundle.toml is refused by the engine: {e}"));
    }
    let fragment = [
        "[plugins.",
        "[chain",
        "[download]",
        "[slots.",
        "[boot]",
        "[trust]",
        "[fleet]",
    ]
    .iter()
    .any(|p| has(p));
    if !fragment {
        return None;
    }
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Some(format!("{at}: this TOML does not parse: {e}")),
    };
    let base: toml::Table = BASE_CONFIG.parse().unwrap();
    for (key, value) in base {
        table.entry(key).or_insert(value);
    }
    let file = dir.path().join("airlock.toml");
    airlock::config::Config::parse(&table.to_string(), &file)
        .err()
        .map(|e| {
            format!("{at}: this part of an airlock.toml is refused by the engine (completed with a minimal device): {e}")
        })
}

#[test]
fn every_toml_block_and_quoted_file_in_the_docs_is_valid() {
    let mut errors = Vec::new();
    for path in documents() {
        let doc = rel(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        for block in blocks(&text) {
            if let Some(file) = block
                .marker
                .as_deref()
                .and_then(|m| m.strip_prefix("same as:"))
            {
                let file = file.trim();
                match std::fs::read_to_string(repo().join(file)) {
                    Ok(content) => {
                        let excerpt = block.lines.join("\n");
                        if !content.contains(&excerpt) {
                            errors.push(format!(
                                "{doc}:{}: this block is not a verbatim excerpt of {file} any more; copy it from there again",
                                block.fence_line
                            ));
                        }
                    }
                    Err(e) => errors.push(format!(
                        "{doc}:{}: `same as: {file}`: cannot read it: {e}",
                        block.fence_line
                    )),
                }
            }
            if block.info == "toml" {
                errors.extend(check_toml(&doc, &block));
            }
        }
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n\n"));
}

#[test]
fn the_sample_output_matcher_is_loose_in_the_documented_way() {
    assert!(line_matches(
        "installed … into slot b (…)",
        "installed x 1.0 into slot b (3 MiB)"
    ));
    assert!(line_matches("  trimmed  ", "trimmed"));
    assert!(!line_matches(
        "installed … into slot b",
        "installed x into slot a"
    ));
    assert!(!line_matches("a…a", "a"));
    let expected = vec![
        (1, "one".to_string()),
        (2, "…".to_string()),
        (3, "th…e".to_string()),
    ];
    assert!(loose_mismatch(&expected, "zero\none\ntwo\nthree\n").is_none());
    assert_eq!(
        loose_mismatch(&expected, "three\none\n").map(|e| e.0),
        Some(3)
    );
    assert_eq!(heredoc_end("cat > a.toml <<'EOF'"), Some("EOF".into()));
    assert_eq!(heredoc_end("cat <<-TOML >> x"), Some("TOML".into()));
    assert_eq!(heredoc_end("echo a"), None);
}
