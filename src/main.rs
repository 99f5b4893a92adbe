fn main() -> std::process::ExitCode {
    coachd::cli::main()
}
