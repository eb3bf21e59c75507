-- Where each agent connected or sent datagrams, with the DNS name it had
-- looked up for the address when there was one. Run from inside the
-- evidence directory.
SELECT
    agent,
    coalesce(dns_name, addr, unix_path) AS destination,
    addr,
    port,
    protocol,
    kind,
    count(*) AS times,
    count(*) FILTER (WHERE error IS NOT NULL AND error <> 'EINPROGRESS') AS failed,
    min(ts) AS first,
    max(ts) AS last
FROM read_parquet('events/**/*.parquet', hive_partitioning = true)
WHERE kind IN ('net.connect', 'net.send', 'dns.query')
GROUP BY ALL
ORDER BY agent, destination, port, kind;
