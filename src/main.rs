use clap::Parser;

fn main() {
    let cli = match ksql_msk::cli::Cli::try_parse() {
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
    std::process::exit(ksql_msk::app::main(cli));
}
