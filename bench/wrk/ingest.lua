-- POST /api/v1/sensor-data with readings that are all distinct.
--
-- wrk ... -s bench/wrk/ingest.lua URL -- KEY SENSORS BASE_EPOCH SPACING_S ITEMS PREFIX THREADS [PACE_MS]
--
-- Reading number r (unique across threads: request n of thread t is
-- g = n * THREADS + t, its readings g * ITEMS .. g * ITEMS + ITEMS - 1) goes to
-- sensor PREFIX..(r % SENSORS + 1) at BASE_EPOCH + (r // SENSORS) * SPACING_S:
-- every (sensor_id, timestamp) is new, so the consumer has real work to do
-- afterwards, and each sensor's readings are SPACING_S apart like a real
-- station's. ITEMS = 1 posts a single reading object, more posts an array.
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

local nsensors, base, spacing, items, prefix, nthreads, headers
local pace = 0
counter = 0  -- global: report.lua reads it at the end

function init(args)
  nsensors, base, spacing = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  items, prefix, nthreads = tonumber(args[5]), args[6], tonumber(args[7])
  pace = tonumber(args[8] or "0")
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Api-Key " .. args[1]}
  math.randomseed(base + thread_id * 7919)
end

local function reading(r)
  local k = math.floor(r / nsensors)
  local rain = 0.0
  if math.random() < 0.3 then rain = math.random() * 15 end
  return string.format(
    '{"sensor_id":"%s%05d","timestamp":"%s","rainfall":%.1f,"soil_moisture":%.3f,"ground_movement":%.2f,"water_level":%.2f}',
    prefix, r % nsensors + 1, os.date("!%Y-%m-%dT%H:%M:%SZ", base + k * spacing),
    rain, 0.2 + math.random() * 0.15, math.random() * 0.5, 1.0 + math.random() * 1.5)
end

function delay()
  if pace <= 0 then return 0 end
  return math.floor(pace * (0.5 + math.random()))
end

function request()
  local g = counter * nthreads + thread_id
  counter = counter + 1
  local body
  if items == 1 then
    body = reading(g)
  else
    local parts = {}
    for j = 0, items - 1 do parts[j + 1] = reading(g * items + j) end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", nil, headers, body)
end
