"""Storage: the AWS adapters every domain builds on, and nothing that knows a domain.

``clients`` (boto3 clients, created once; AWS errors -> domain exceptions),
``signed_reads`` (GetItem / GetObject without botocore, for cold starts), ``dynamo``
(the metadata table and DynamoDB values), ``s3`` (the artifacts bucket), ``eventbridge``
(domain events onto the bus), ``stepfunctions`` (training executions) and ``keys`` (every
key, index name and S3 prefix). The only package that imports boto3 (import-linter).
"""
