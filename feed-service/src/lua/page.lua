-- Reads one page of a feed with the items and their authors' display names, in one round trip.
-- Order: newest first (score = creation time, descending), ties by post id descending.
--
-- KEYS[1] the generation pointer
-- ARGV[1] key base (`<prefix>:feed:`), ARGV[2] author id ('' = the global feed),
-- ARGV[3] cursor score ('' = from the newest), ARGV[4] cursor post id, ARGV[5] page size
--
-- Returns { more (0|1), the last post's id, its score, then per item (up to `size`): its stored JSON
-- and the display name to show (the author's profile name, else the post's username, else false).
-- The caller splices the name into the JSON: building long strings in Lua costs Redis more time
-- than the whole lookup.

local base = ARGV[1]
local root = base .. 'g' .. (redis.call('GET', KEYS[1]) or '1') .. ':'
local feedKey = root .. (ARGV[2] == '' and 'activity:global' or ('activity:user:' .. ARGV[2]))
local size = tonumber(ARGV[5])
local wanted = size + 1

-- Byte order, as the sorted set orders equal scores (Lua's `<` on strings follows the locale).
local function bytesBefore(a, b)
  local length = math.min(#a, #b)
  for i = 1, length do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local ids, scores = {}, {}
local function take(reply)
  for i = 1, #reply, 2 do
    if #ids == wanted then return end
    ids[#ids + 1] = reply[i]
    scores[#scores + 1] = reply[i + 1]
  end
end

if ARGV[3] == '' then
  take(redis.call('ZREVRANGE', feedKey, 0, wanted - 1, 'WITHSCORES'))
else
  local score, after = ARGV[3], ARGV[4]
  -- Posts sharing the cursor's score (the same millisecond) come after it when their id is smaller.
  local ties = redis.call('ZRANGEBYSCORE', feedKey, score, score, 'WITHSCORES')
  for i = #ties - 1, 1, -2 do
    if #ids == wanted then break end
    if bytesBefore(ties[i], after) then
      ids[#ids + 1] = ties[i]
      scores[#scores + 1] = ties[i + 1]
    end
  end
  if #ids < wanted then
    take(redis.call('ZREVRANGEBYSCORE', feedKey, '(' .. score, '-inf', 'WITHSCORES', 'LIMIT', 0, wanted - #ids))
  end
end

local result = { #ids > size and 1 or 0, false, false }
local names = {}
for i = 1, math.min(#ids, size) do
  local record = redis.call('HMGET', root .. 'item:' .. ids[i], 'json', 'author', 'username')
  local json, author = record[1], record[2]
  if json then
    local name = author and names[author]
    if name == nil and author then
      name = redis.call('HGET', root .. 'author:' .. author, 'name')
      names[author] = name
    end
    result[#result + 1] = json
    result[#result + 1] = name or record[3]
    result[2], result[3] = ids[i], scores[i]
  end
end
return result
