// weft/weft.hpp: everything.
#pragma once

#include "weft/batch.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/isolated.hpp"
#include "weft/metrics.hpp"
#include "weft/options.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"
#include "weft/parallel.hpp"
#include "weft/keyed.hpp"
#include "weft/default_pool.hpp"
