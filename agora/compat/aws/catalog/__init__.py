"""The AWS Marketplace Catalog API (boto3 `marketplace-catalog`): REST-JSON over Agora's catalog and offers."""
