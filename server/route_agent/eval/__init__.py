"""The evaluator: measure a routing policy on recorded outcomes (`route-agent eval`, `policy calibrate`,
`policy diff`). numpy and matplotlib (the `eval` extra) are imported only where they are needed."""
