-- Applies one event to the feed read model, atomically. Layout: see feed-keys.ts.
--
-- KEYS[1] the generation pointer, KEYS[2] the rebuild marker
-- ARGV[1] key base (`<prefix>:feed:`)
-- ARGV[2] the generation to write, or '' for the live projection: the generation served plus, while a
--         rebuild runs, the one it fills (so the rebuild misses nothing the live consumer applies)
-- ARGV[3] 'post' | 'delete' | 'profile', then its arguments (see the dispatch at the end)
--
-- Every change is guarded by the aggregate's version: the highest version seen wins, whatever the
-- order or number of deliveries. Returns the outcome for the first generation written:
-- 'applied', or why it was ignored: 'duplicate' (that version is held), 'stale' (a newer one is
-- held) or 'deleted' (a tombstone at that version or later is held).

local base = ARGV[1]

local function keyOf(generation, suffix)
  return base .. 'g' .. generation .. ':' .. suffix
end

local function generations()
  if ARGV[2] ~= '' then return { ARGV[2] } end
  local live = redis.call('GET', KEYS[1]) or '1'
  local building = redis.call('HGET', KEYS[2], 'generation')
  if building and building ~= live then return { live, building } end
  return { live }
end

-- Replaces a post's record by a version marker that expires (a tombstone or an eviction mark).
local function mark(itemKey, version, state, ttl)
  redis.call('DEL', itemKey)
  redis.call('HSET', itemKey, 'version', version, 'state', state)
  redis.call('PEXPIRE', itemKey, ttl)
end

-- Keeps the newest `cap` posts of a feed; a post trimmed out of every feed loses its record.
local function trim(generation, feedKey, cap, ttl)
  local excess = redis.call('ZCARD', feedKey) - cap
  if excess <= 0 then return end
  local removed = redis.call('ZRANGE', feedKey, 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', feedKey, 0, excess - 1)
  for _, postId in ipairs(removed) do
    local itemKey = keyOf(generation, 'item:' .. postId)
    local record = redis.call('HMGET', itemKey, 'version', 'author')
    local listed = record[2] and (redis.call('ZSCORE', keyOf(generation, 'activity:global'), postId)
      or redis.call('ZSCORE', keyOf(generation, 'activity:user:' .. record[2]), postId))
    if not listed and record[1] then mark(itemKey, record[1], 'evicted', ttl) end
  end
end

-- Why an event at `version` must be ignored given the record held ({ version, state }), or nil to apply it.
local function ignoreReason(record, version, kind)
  local held = tonumber(record[1])
  if not held then return nil end
  local tombstone = record[2] == 'deleted'
  if kind == 'snapshot' and tombstone and held >= version then return 'deleted' end
  -- A delete wins a tie with a snapshot of its version, as the tombstone wins over that snapshot.
  if kind == 'delete' and held == version and not tombstone then return nil end
  if held == version then return 'duplicate' end
  if held > version then return 'stale' end
  return nil
end

-- post.created / post.updated: both carry the whole post.
local function applySnapshot(generation, postId, authorId, version, score, json, username, globalCap, userCap, ttl)
  local itemKey = keyOf(generation, 'item:' .. postId)
  local reason = ignoreReason(redis.call('HMGET', itemKey, 'version', 'state'), version, 'snapshot')
  if reason then return reason end
  redis.call('DEL', itemKey)
  redis.call('HSET', itemKey, 'version', version, 'state', 'live', 'author', authorId, 'json', json)
  if username ~= '' then redis.call('HSET', itemKey, 'username', username) end
  local globalKey = keyOf(generation, 'activity:global')
  local userKey = keyOf(generation, 'activity:user:' .. authorId)
  redis.call('ZADD', globalKey, score, postId)
  redis.call('ZADD', userKey, score, postId)
  trim(generation, globalKey, globalCap, ttl)
  trim(generation, userKey, userCap, ttl)
  return 'applied'
end

-- post.deleted: unlisted everywhere, a tombstone keeps the version so older events cannot bring it back.
local function applyDelete(generation, postId, authorId, version, ttl)
  local itemKey = keyOf(generation, 'item:' .. postId)
  local record = redis.call('HMGET', itemKey, 'version', 'state', 'author')
  local reason = ignoreReason(record, version, 'delete')
  if reason then return reason end
  redis.call('ZREM', keyOf(generation, 'activity:global'), postId)
  redis.call('ZREM', keyOf(generation, 'activity:user:' .. authorId), postId)
  if record[3] and record[3] ~= authorId then
    redis.call('ZREM', keyOf(generation, 'activity:user:' .. record[3]), postId)
  end
  mark(itemKey, version, 'deleted', ttl)
  return 'applied'
end

-- profile.updated: the author's display name, joined to items at read time.
local function applyProfile(generation, userId, version, name)
  local authorKey = keyOf(generation, 'author:' .. userId)
  local reason = ignoreReason({ redis.call('HGET', authorKey, 'version') }, version, 'profile')
  if reason then return reason end
  redis.call('HSET', authorKey, 'version', version, 'name', name)
  return 'applied'
end

local op = ARGV[3]
local outcome
for index, generation in ipairs(generations()) do
  local result
  if op == 'post' then
    -- postId, authorId, version, score, item JSON, author username ('' = none), global cap, user cap, marker TTL (ms)
    result = applySnapshot(generation, ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12])
  elseif op == 'delete' then
    -- postId, authorId, version, marker TTL (ms)
    result = applyDelete(generation, ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7])
  elseif op == 'profile' then
    -- userId, version, display name
    result = applyProfile(generation, ARGV[4], tonumber(ARGV[5]), ARGV[6])
  else
    return redis.error_reply('unknown feed operation ' .. tostring(op))
  end
  if index == 1 then outcome = result end
end
return outcome
