use clap::Parser;

fn main() {
    // `/usr/bin/ksql` is a link to this binary: run the release's CLI with every argument.
    let mut args = std::env::args_os();
    let argv0 = args.next();
    if argv0
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        == Some(std::ffi::OsStr::new("ksql"))
    {
        std::process::exit(ksql_msk::cli::app::ksql(None, args.collect()));
    }
    let cli = match ksql_msk::cli::args::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0 (74 when stdout cannot be written); a
        // usage error exits EX_USAGE (64), as every other failure of the agent exits
        // with a sysexits code.
        Err(e) => {
            let printed = e.print();
            std::process::exit(if e.use_stderr() {
                ksql_msk::exit::USAGE
            } else if printed.is_err() {
                ksql_msk::exit::ExitCode::Io.code()
            } else {
                0
            });
        }
    };
    std::process::exit(ksql_msk::cli::app::main(cli));
}
