from .users import lookup_user


async def get_profile(request) -> dict:
    user = lookup_user(request["user_id"])  # expect: LB001
    return {"user": user}
