#include "tests/support/test_env.h"
