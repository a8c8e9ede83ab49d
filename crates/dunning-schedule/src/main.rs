fn main() -> std::process::ExitCode {
    dunning_schedule::main()
}
