//! The `airlock` command. All printing happens in `cli`; the library only returns values and
//! typed errors.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
