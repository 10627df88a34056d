// Placeholder until the option parser lands.
#include "cli/worker_options.h"
