"""What is measured and how: the profiles, which weights serve which purpose, the evaluation
protocol and its summaries.
"""
