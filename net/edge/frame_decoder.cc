// The frame decoder is a header-only template (feed() takes the callback by type so the per-frame
// call inlines); this file checks that the header compiles on its own.
#include "net/edge/frame_decoder.h"
