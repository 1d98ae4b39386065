// Entry points of the subcommands; each builds its own CLI::App and returns the exit code.
// argv[0] of each is the subcommand's own name ("stylize weights").
#pragma once

namespace stylize::cli {

int stylize_main(int argc, char** argv);  // stylize CONTENT STYLE... -o OUT
int weights_main(int argc, char** argv);  // stylize weights fetch|convert|info|synth
int batch_main(int argc, char** argv);    // stylize batch --style S --out-dir D INPUTS...
int serve_main(int argc, char** argv);    // stylize serve [--port N] ...
int worker_main(int argc, char** argv);   // stylize worker --queue redis://HOST:PORT [engine flags]
int train_main(int argc, char** argv);    // stylize train --style S --data DIR -o F.safetensors
int apply_main(int argc, char** argv);    // stylize apply --filter F IN... (-o OUT | --out-dir DIR)

}  // namespace stylize::cli
