//! The `wcp` binary: everything lives in the library; see `host::cli`.

fn main() -> std::process::ExitCode {
    host::cli::main(std::env::args_os())
}
