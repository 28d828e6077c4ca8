#include "cli/command.h"

int main(int argc, char** argv) { return ipsnat::cli::run(argc, argv); }
