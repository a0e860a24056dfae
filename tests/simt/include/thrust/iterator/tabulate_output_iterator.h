// The SIMT emulator's Thrust (simt_thrust.h).
#pragma once
#include "simt_thrust.h"
