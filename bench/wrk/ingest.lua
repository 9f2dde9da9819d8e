-- POST /api/v1/sensor-data with readings that are all distinct.
--
-- wrk ... -s bench/wrk/ingest.lua URL -- KEY SENSORS BASE_EPOCH SPACING_S ITEMS PREFIX THREADS [PACE_MS]
--
-- Each wrk thread is a set of stations of its own: thread t owns the sensors
-- whose index i (0-based) has i % THREADS == t, OWN = SENSORS // THREADS of
-- them. Its reading number q (request n carries q = n * ITEMS .. n * ITEMS +
-- ITEMS - 1) goes to its sensor q % OWN at BASE_EPOCH + (q // OWN) *
-- SPACING_S: every (sensor_id, timestamp) is new, so the consumer has real
-- work to do afterwards, and each sensor's readings are SPACING_S apart and
-- arrive in time order, give or take the few requests a thread's
-- connections have in flight, like a real station's. (An earlier version
-- numbered readings across threads; the threads' counters drifted apart, so
-- every sensor got two streams about a day apart, and the consumer had to
-- re-score ~7 stored predictions per reading for the "late" one: see
-- docs/benchmarks.md, 2026-11-27 04:37.)
-- ITEMS = 1 posts a single reading object, more posts an array.
-- Bodies are built per request (a 1000-reading body takes well under a
-- millisecond in LuaJIT), so no body is ever repeated.
--
-- PACE_MS > 0 makes each connection a station that posts, waits for the
-- answer, then pauses a random 0.5..1.5 x PACE_MS before its next reading
-- (an offered load of about CONNECTIONS / PACE_MS per millisecond);
-- 0 or absent is a closed loop (the next request as soon as the answer came).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")
setup, response, done = report.setup, report.response, report.done

local nsensors, base, spacing, items, prefix, nthreads, headers, own, tid
local pace = 0
counter = 0  -- global: report.lua reads it at the end

function init(args)
  nsensors, base, spacing = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  items, prefix, nthreads = tonumber(args[5]), args[6], tonumber(args[7])
  pace = tonumber(args[8] or "0")
  tid = thread_id % nthreads
  own = math.floor(nsensors / nthreads)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Api-Key " .. args[1]}
  math.randomseed(base + thread_id * 7919)
end

local function reading(q)
  local k = math.floor(q / own)
  local sensor = (q % own) * nthreads + tid + 1
  local rain = 0.0
  if math.random() < 0.3 then rain = math.random() * 15 end
  return string.format(
    '{"sensor_id":"%s%05d","timestamp":"%s","rainfall":%.1f,"soil_moisture":%.3f,"ground_movement":%.2f,"water_level":%.2f}',
    prefix, sensor, os.date("!%Y-%m-%dT%H:%M:%SZ", base + k * spacing),
    rain, 0.2 + math.random() * 0.15, math.random() * 0.5, 1.0 + math.random() * 1.5)
end

function delay()
  return report.pause(pace)
end

function request()
  local n = counter
  counter = counter + 1
  local body
  if items == 1 then
    body = reading(n)
  else
    local parts = {}
    for j = 0, items - 1 do parts[j + 1] = reading(n * items + j) end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", nil, headers, body)
end
