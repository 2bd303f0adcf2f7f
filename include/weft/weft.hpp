// weft/weft.hpp: everything (except weft/mpi.hpp, which needs an MPI build, and the C
// header weft/weft.h).
#pragma once

#include "weft/batch.hpp"
#include "weft/channel.hpp"
#include "weft/coro.hpp"
#include "weft/default_pool.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/isolated.hpp"
#include "weft/keyed.hpp"
#include "weft/lanes.hpp"
#include "weft/map_batch.hpp"
#include "weft/metrics.hpp"
#include "weft/observer.hpp"
#include "weft/options.hpp"
#include "weft/parallel.hpp"
#include "weft/pipeline.hpp"
#include "weft/pool.hpp"
#include "weft/scheduler.hpp"
#include "weft/stream.hpp"
#include "weft/task_group.hpp"
