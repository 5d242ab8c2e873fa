use clap::Parser;

fn main() {
    let cli = match ksql_msk::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0; a usage error exits EX_USAGE (64), as
        // every other failure of the agent exits with a sysexits code.
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                ksql_msk::exit::USAGE
            } else {
                0
            });
        }
    };
    std::process::exit(ksql_msk::app::main(cli));
}
