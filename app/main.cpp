// seatledger: one binary with subcommands.

#include <iostream>

#include <CLI/CLI.hpp>

#include "app/demo.hpp"

int main(int argc, char** argv) {
  CLI::App app{"seatledger: the seat ledger for seat-based enterprise "
               "subscriptions"};
  app.require_subcommand(1);
  auto* demo = app.add_subcommand(
    "demo", "run a scenario through the domain rules and print the results");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*demo)
    return seatledger::app::run_demo(std::cout);
  return 0;
}
