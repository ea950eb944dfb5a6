fn main() -> std::process::ExitCode {
    cardbench::cli::main()
}
