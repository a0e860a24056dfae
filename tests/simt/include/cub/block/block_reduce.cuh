// The SIMT emulator's CUB (simt_cub.h).
#pragma once
#include "simt_cub.h"
