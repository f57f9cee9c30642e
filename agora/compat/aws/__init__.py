"""AWS Marketplace wire compatibility (boto3): SigV4 verification (api-surface.md §0-§4)."""
