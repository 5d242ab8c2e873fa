use clap::Parser;

fn main() {
    let cli = ksql_msk::cli::Cli::parse();
    std::process::exit(ksql_msk::app::main(cli));
}
