-- Files each agent wrote: opened for writing, created, truncated, renamed
-- or linked into place, or made as directories. Failed attempts are listed
-- with their error. Run from inside the evidence directory.
SELECT
    agent,
    coalesce(new_path, path) AS path,
    kind,
    count(*) AS times,
    min(ts) AS first,
    max(ts) AS last,
    bool_or(created) AS created,
    string_agg(DISTINCT error, ',') AS errors
FROM read_parquet('events/**/*.parquet', hive_partitioning = true)
WHERE (kind = 'file.open' AND access IN ('write', 'read_write'))
   OR kind IN ('file.truncate', 'file.rename', 'file.link', 'file.mkdir')
GROUP BY ALL
ORDER BY agent, path, kind;
